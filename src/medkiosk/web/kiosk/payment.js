// The outpatient payment flow (门诊缴费): bills → split → QR code → result, three taps from the menu.
//
// The flow owns the service calls (through the agent's forwarder), the polling, the wait for a
// payment code at the scanner and the printing; app.js owns navigation and the session. A payment
// in progress is the patient's activity: each poll restarts the idle countdown (the session clock
// throttles what it tells the service). An order still open when the patient leaves (返回, 首页,
// 退出) is cancelled, so nothing is charged that the patient did not mean to pay.

import { api, ApiError } from "./api.js";
import { h } from "./dom.js";
import { PAY, T } from "./messages.js";
import {
  billsProblemScreen, billsScreen, historyScreen, noBillsScreen, payLoadingScreen, qrScreen, resultScreen, splitScreen,
} from "./payment-screens.js";

const POLL_MS = 2000;
const SCREENS = new Set(["pay-bills", "pay-split", "pay-qr", "pay-result", "pay-history"]);
/** Screens on which an order is open and leaving them cancels it. */
const OPEN_ORDER_SCREENS = new Set(["pay-split", "pay-qr"]);

export class PaymentFlow {
  /**
   * @param {object} app what the flow may ask of the page (app.js)
   * @param {(name: string, params?: object, opts?: object) => void} app.show   push a screen
   * @param {(entries: object[]) => void} app.setStack  replace the back stack, show its top
   * @param {(name: string) => void} app.backTo   pop back to a screen already on the stack
   * @param {() => void} app.home                 the patient's menu
   * @param {() => void} app.sessionGone          the service ended the session: go home
   * @param {() => void} app.activity             the patient is busy paying
   * @param {(outcome: object) => void} app.outcome  an identification outcome read meanwhile
   * @param {(name: string) => void} app.comingSoon
   * @param {() => number} app.longPollSeconds
   * @param {(text: string) => void} app.say
   * @param {(text: string) => void} app.announce
   */
  constructor(app) {
    this.app = app;
    this.open = null;       // the order not finished yet: cancelled if the patient leaves
    this.choice = null;     // what the patient chose to pay: {visitNo, mode, orderNos}
    this.visitsLeft = 0;    // unpaid visits at the last look
    this.printed = new Set();  // orders whose paper is out, so a result drawn again prints nothing
    this.invoices = new Set();  // orders whose A4 e-invoice is out: another copy is a counted reprint
    this.restarting = false;
    this.gen = 0;           // bumped whenever the screen changes: older timers and polls stop
    this.timers = [];
    this.aborts = [];
  }

  owns(name) {
    return SCREENS.has(name);
  }

  /** Stop every timer and poll of the screen on display (the open order is kept). */
  stop() {
    this.gen += 1;
    for (const timer of this.timers) clearTimeout(timer);
    for (const abort of this.aborts) abort.abort();
    this.timers = [];
    this.aborts = [];
  }

  /** Drop all memory of the patient's payments (the session ended). */
  forget() {
    this.stop();
    this.open = null;
    this.choice = null;
    this.visitsLeft = 0;
    this.printed.clear();
    this.invoices.clear();
  }

  render({ name, params = {} }) {
    switch (name) {
      case "pay-split": return this.splitView(params);
      case "pay-qr": return this.qrView(params);
      case "pay-result": return this.resultView(params);
      case "pay-history": return this.historyView();
      default: return this.billsView();
    }
  }

  /** 返回 from the split or QR screen: cancel the open order and show the bills again. */
  leavesOpenOrder(name) {
    return OPEN_ORDER_SCREENS.has(name);
  }

  async back() {
    const result = await this.abandon({ printIfPaid: false });  // its result screen prints
    if (result && result.terminal && result.state !== "closed") {
      this.showResult(result, this.choice);  // the patient had paid meanwhile: say so
      return;
    }
    if (result) this.app.announce(PAY.cancelledNote);
    this.app.backTo("pay-bills");
  }

  /**
   * The patient leaves while an order is open: cancel it. A payment that raced in is completed by
   * the service, not lost, and its receipt still prints (before the session ends).
   */
  async abandon({ printIfPaid = true } = {}) {
    const order = this.open;
    this.stop();
    this.open = null;
    if (!order) return null;
    let result = null;
    try {
      result = await api.pay.cancel(order.order_no);
    } catch {
      return null;  // unreachable or session gone: the service closes it at its deadline
    }
    if (printIfPaid && result && result.state === "completed") await this.print(result, null);
    return result;
  }

  // ---- bills -------------------------------------------------------------------------------------

  billsView() {
    const host = payLoadingScreen(PAY.loadingBills);
    this.loadInto(host, "pay-bills", () => api.pay.bills(), (bills) => this.showBills(host, bills));
    return host;
  }

  showBills(host, bills) {
    const visits = (bills && bills.visits) || [];
    this.visitsLeft = visits.length;
    if (!visits.length) {
      this.swap(host, noBillsScreen({ onDone: () => this.app.home(), onHistory: () => this.app.show("pay-history") }));
      return;
    }
    const view = billsScreen({ bills, onChoose: (choice) => this.start(choice, view),
      onHistory: () => this.app.show("pay-history") });
    this.swap(host, view.node);
  }

  /** Tap 2: create the order for the chosen bill; its split (pre-settlement) comes back with it. */
  async start(choice, view) {
    const gen = this.gen;
    view.hideProblem();
    view.setBusy(true, PAY.calculating);
    let order;
    try {
      order = await api.pay.start(choice);
    } catch (err) {
      if (this.gone(err) || gen !== this.gen) return;
      view.setBusy(false);
      const offer = err.data && err.data.offer_self_pay && choice.mode !== "self_pay"
        ? h("button", { type: "button", class: "btn btn-primary btn-xl", dataset: { testid: "pay-offer-self-pay" },
          onclick: () => this.start({ ...choice, mode: "self_pay" }, view) }, PAY.offerSelfPay)
        : null;
      view.showProblem(err.message, err.nextStep, offer);
      return;
    }
    this.choice = choice;
    if (gen !== this.gen) {  // the patient left while the bill was being computed
      this.open = order.terminal ? null : order;
      this.abandon();
      return;
    }
    this.proceed(order, choice);
  }

  /** Where an order goes next: the split to confirm, or its result when it has finished by itself. */
  proceed(order, choice) {
    if (order.terminal) {
      this.showResult(order, choice);
      return;
    }
    this.open = order;
    this.app.show("pay-split", { order, choice });
  }

  // ---- split ---------------------------------------------------------------------------------------

  splitView({ order, choice }) {
    const gen = this.gen;
    const view = splitScreen({ order, onQr: () => this.payByQr(gen, order, choice, view),
      onCard: () => this.payByCard(gen, order, choice, view) });
    // Nothing left to pay in cash (or the order is already on its way): it completes by itself.
    if (order.state !== "presettled") this.watch(gen, order, choice, () => view.setStatus(PAY.settling));
    return view.node;
  }

  /** Tap 3: a QR order for the cash part. */
  async payByQr(gen, order, choice, view) {
    view.setBusy(true, PAY.calculating);
    let next = null;
    try {
      next = await api.pay.pay(order.order_no, "qr");
    } catch (err) {
      next = await this.afterPayFailed(err, gen, order, view, next);
      if (!next) return;
    }
    if (gen !== this.gen) return;
    this.open = next;
    if (next.terminal) {
      this.showResult(next, choice);
    } else if (next.state === "awaiting_payment" && (next.code_url || next.pay_method === "payment_code")) {
      this.app.show("pay-qr", { order: next, choice });
    } else if (next.state === "awaiting_payment") {
      view.setBusy(true);  // no code: the channel could not be reached; this order cannot be paid now
      view.showProblem(next.message || T.networkError, PAY.channelDown);
    } else {
      view.setStatus(PAY.settling);
      this.watch(gen, next, choice, null);
    }
  }

  /**
   * Tap 3, by card: the service sets the order to be paid on the kiosk's POS, then the agent drives
   * the terminal (the patient inserts the card and enters the PIN) and reports the outcome.
   */
  async payByCard(gen, order, choice, view) {
    view.setBusy(true, PAY.cardStarting);
    let next = null;
    try {
      next = await api.pay.pay(order.order_no, "bank_card");
      if (gen !== this.gen) return;
      if (next.state === "awaiting_payment" && next.pos) {
        view.setStatus(PAY.cardInsert);
        this.app.say(PAY.cardInsert);
        next = await api.posSale(order.order_no);
      }
    } catch (err) {
      next = await this.afterPayFailed(err, gen, order, view, next);
      if (!next) return;
    }
    if (gen !== this.gen) return;
    this.open = next;
    if (next.terminal) {
      this.showResult(next, choice);
    } else {
      // The POS answered late or the report is on its way: the service finishes it; keep watching.
      view.setStatus(next.next_step || PAY.settling);
      this.watch(gen, { ...order, ...next, order_no: order.order_no }, choice, null);
    }
  }

  /**
   * A pay request that failed. Null when the page stops here: the session ended, the patient left,
   * or the problem is on screen. Otherwise the order as it now stands: asked of the service after an
   * unknown outcome, else `known` (what an earlier step of the same tap answered).
   */
  async afterPayFailed(err, gen, order, view, known) {
    if (this.gone(err) || gen !== this.gen) return null;
    const next = err.outcomeUnknown ? await this.statusOf(order) : known;
    if (!next) {
      view.setBusy(false);
      view.showProblem(err.message, err.nextStep);
    }
    return next;
  }

  // ---- QR code ------------------------------------------------------------------------------------

  qrView({ order, choice }) {
    const gen = this.gen;
    const view = qrScreen({
      order, qrUrl: order.code_url ? api.qrImageUrl(order.code_url) : "",
      onCancel: () => this.cancelFromQr(view),
    });
    const deadline = Date.parse(order.pay_deadline || "");
    if (Number.isFinite(deadline)) {
      const tick = () => {
        const left = Math.max(0, Math.ceil((deadline - Date.now()) / 1000));
        view.setCountdown(left > 0 ? PAY.qrCountdown(Math.floor(left / 60), left % 60) : PAY.qrExpired);
        if (gen === this.gen) this.later(gen, tick, 1000);
      };
      tick();
    }
    this.progress(view, order);
    this.watch(gen, order, choice, (next) => this.progress(view, next));
    if (order.state === "awaiting_payment" && order.pay_method === "qr") {
      this.listenForPaymentCode(gen, order, choice, view);
    }
    this.app.say(PAY.sayQr);
    return view.node;
  }

  progress(view, order) {
    if (order.state !== "awaiting_payment") view.hideCode(PAY.processing);
    else if (order.pay_method === "payment_code") view.hideCode(PAY.confirmOnPhone);
    else view.setStatus(PAY.waiting);
  }

  async cancelFromQr(view) {
    view.setCancelBusy(true);
    view.setStatus(PAY.cancelling);
    await this.back();
  }

  /**
   * While the code shows, a payment code held to the kiosk's scanner pays the order: the agent
   * hands it to this long-poll (never to identification), and the page sends it to the service.
   */
  async listenForPaymentCode(gen, order, choice, view) {
    let failures = 0;
    while (gen === this.gen) {
      const abort = new AbortController();
      this.aborts.push(abort);
      let outcome;
      try {
        outcome = await api.waitForIdentity(this.app.longPollSeconds(), abort.signal, { orderNo: order.order_no });
        failures = 0;
      } catch (err) {
        if (err.name === "AbortError" || gen !== this.gen) return;
        failures += 1;
        await pause(Math.min(1000 * failures, 5000));
        continue;
      } finally {
        this.aborts = this.aborts.filter((a) => a !== abort);
      }
      if (gen !== this.gen) return;
      if (!outcome || outcome.outcome === "waiting") continue;
      if (outcome.outcome === "payment_code") {
        if (outcome.order_no === order.order_no && outcome.auth_code
            && await this.payByCode(gen, order, choice, view, outcome.auth_code)) return;
        continue;
      }
      // A card or e-certificate meanwhile: another patient identified takes over the kiosk as on
      // any screen; anything else is said here without leaving the payment.
      if (outcome.outcome === "identified") this.app.outcome(outcome);
      else if (outcome.message) view.showProblem(outcome.message, outcome.next_step);
    }
  }

  /**
   * @returns {Promise<boolean>} true once the code was taken (stop listening), false to keep waiting.
   *
   * The service charges a payment code on the order whose QR code is showing: it closes the QR
   * order (…P1) and charges the code as …P2, or, if the phone paid the QR code meanwhile, keeps
   * that payment and charges nothing. So the page sends the code and follows the same order.
   */
  async payByCode(gen, order, choice, view, code) {
    view.hideProblem();
    view.setStatus(PAY.codeCharging);
    let next;
    try {
      next = await api.pay.pay(order.order_no, "payment_code", code);
    } catch (err) {
      if (this.gone(err) || gen !== this.gen) return true;
      if (err.outcomeUnknown) return true;  // the poll asks the service what happened
      view.showProblem(err.message, err.nextStep);
      view.setStatus(PAY.waiting);
      return false;
    }
    if (gen !== this.gen) return true;
    if (next.terminal || next.state !== "awaiting_payment" || next.pay_method === "payment_code") {
      this.follow(next, choice, view);
      return true;
    }
    // Still the QR order: the channel could not close it just now. The code was not charged and
    // the QR code stays valid; the patient may scan it or show the payment code again.
    view.showProblem(next.message || PAY.codeNotTaken, PAY.codeNotTakenNext);
    view.setStatus(PAY.waiting);
    return false;
  }

  follow(order, choice, view) {
    if (order.terminal) {
      this.showResult(order, choice);
      return;
    }
    this.open = order;
    this.progress(view, order);
  }

  // ---- polling --------------------------------------------------------------------------------------

  /** Ask the service every ~2 s until the order finishes; each look counts as the patient's activity. */
  watch(gen, order, choice, onUpdate) {
    const look = async () => {
      const next = await this.statusOf(order);
      if (gen !== this.gen) return;
      this.app.activity();
      if (next && next.terminal) {
        this.showResult(next, choice);
        return;
      }
      if (next) {
        this.open = next;
        if (onUpdate) onUpdate(next);
      }
      this.later(gen, look, POLL_MS);
    };
    this.later(gen, look, POLL_MS);
  }

  /** The order as the service sees it now, or null if it could not be asked (try again later). */
  async statusOf(order) {
    try {
      return await api.pay.status(order.order_no);
    } catch (err) {
      this.gone(err);
      return null;
    }
  }

  // ---- result -----------------------------------------------------------------------------------------

  showResult(order, choice) {
    this.open = order.terminal ? null : order;
    this.app.setStack([{ name: "menu", params: {} }, { name: "pay-bills", params: {} },
      { name: "pay-result", params: { order, choice } }]);
  }

  resultView({ order, choice }) {
    const gen = this.gen;
    const retry = () => this.app.backTo("pay-bills");
    const view = resultScreen({
      order,
      moreBills: order.state === "completed" && this.visitsLeft > 1,
      onDone: () => this.app.home(),
      onMore: retry,
      onRetry: retry,
      onPrintAgain: () => this.print(order, view, { again: true }),
      onInvoice: () => this.printInvoice(order, view),
      onSelfPay: order.offer_self_pay ? () => this.selfPayInstead(order, choice, view) : null,
    });
    if (!order.terminal) {
      this.watch(gen, order, choice, null);  // refunding: the result follows
    } else if (needsPaper(order)) {
      this.print(order, view);
    }
    this.app.say(order.state === "completed" ? PAY.saySuccess
      : order.terminal && order.state !== "closed" ? `${order.message || ""}${order.next_step || ""}` : "");
    return view.node;
  }

  /** One tap: the bill insurance could not settle, paid as self-pay instead. */
  async selfPayInstead(order, choice, view) {
    if (this.restarting) return;  // one tap, one order
    this.restarting = true;
    try {
      await this.startSelfPay(order, choice, view);
    } finally {
      this.restarting = false;
    }
  }

  async startSelfPay(order, choice, view) {
    const visitNo = (choice && choice.visitNo) || (order.visit && order.visit.visit_no);
    const orderNos = choice ? choice.orderNos : null;
    const next = { visitNo, mode: "self_pay", orderNos };
    let fresh;
    try {
      fresh = await api.pay.start(next);
    } catch (err) {
      if (this.gone(err)) return;
      view.showProblem(err.message, err.nextStep);
      return;
    }
    this.choice = next;
    this.app.setStack([{ name: "menu", params: {} }, { name: "pay-bills", params: {} }]);
    this.proceed(fresh, next);
  }

  /**
   * The e-invoice on the kiosk's A4 printer: the PDF from the service through the agent's
   * forwarder, then to the agent's A4 printer. The first copy of a paid bill is printed once per
   * order (job id); any further copy is a reprint the service counts.
   */
  async printInvoice(order, view) {
    const reprint = this.invoices.has(order.order_no);
    view.setInvoice("busy", PAY.invoicePrinting);
    try {
      await printInvoicePdf(order.order_no, reprint);
      this.invoices.add(order.order_no);
      view.setInvoice("done", PAY.invoicePrinted);
      this.app.say(PAY.sayInvoicePrinted);
    } catch (err) {
      if (this.gone(err)) return;
      view.setInvoice("failed", err.message, invoiceNextStep(err, PAY.invoiceLater));
    }
  }

  // ---- payment history (缴费记录) --------------------------------------------------------------------

  historyView() {
    const host = payLoadingScreen(PAY.historyLoading, "pay-history-loading");
    this.loadInto(host, "pay-history", () => api.pay.history(), (history) => this.showHistory(host, history));
    return host;
  }

  showHistory(host, history) {
    const view = historyScreen({
      payments: (history && history.payments) || [],
      onPrint: (payment) => this.reprintInvoice(payment, view),
      onBack: () => this.app.backTo("pay-bills"),
    });
    this.swap(host, view.node);
  }

  /** 缴费记录: every copy printed from here is a reprint (补打), counted by the service. */
  async reprintInvoice(payment, view) {
    view.setPrint(payment.order_no, "busy", PAY.invoicePrinting);
    try {
      await printInvoicePdf(payment.order_no, true);
      view.setPrint(payment.order_no, "done", PAY.invoicePrinted);
      this.app.say(PAY.sayInvoicePrinted);
    } catch (err) {
      if (this.gone(err)) return;
      view.setPrint(payment.order_no, "failed", err.message, invoiceNextStep(err, PAY.invoiceLaterHere));
    }
  }

  /** The receipt, or the exception slip, to the kiosk's printer; the printer's refusal is shown as it says it. */
  async print(order, view, { again = false } = {}) {
    const slip = order.state !== "completed";
    const done = slip ? PAY.slipPrinted : PAY.printed;
    if (!again && this.printed.has(order.order_no)) {
      if (view) view.setPrint("done", done);
      return;
    }
    if (view) view.setPrint("busy", PAY.printing);
    try {
      const receipt = await api.pay.receipt(order.order_no);
      await api.printReceipt(receipt);
      this.printed.add(order.order_no);
      if (view) view.setPrint("done", done);
    } catch (err) {
      if (this.gone(err)) return;
      if (view) view.setPrint("failed", err.message, err.nextStep);
    }
  }

  // ---- helpers ------------------------------------------------------------------------------------------

  /** A 401 with session_ended: the session is over, the page goes home. */
  gone(err) {
    if (err instanceof ApiError && err.sessionEnded) {
      this.open = null;
      this.app.sessionGone();
      return true;
    }
    return false;
  }

  /**
   * Fills a loading screen: `show` gets what `fetch` answered, unless the patient has moved on
   * meanwhile; a failure becomes the problem screen, whose retry opens `route` afresh.
   */
  async loadInto(host, route, fetch, show) {
    const gen = this.gen;
    let data;
    try {
      data = await fetch();
    } catch (err) {
      if (gen !== this.gen || this.gone(err)) return;
      this.swap(host, billsProblemScreen({ message: err.message, nextStep: err.nextStep,
        onRetry: () => this.app.show(route, {}, { replace: true }) }));
      return;
    }
    if (gen !== this.gen) return;
    show(data);
  }

  later(gen, fn, ms) {
    const timer = setTimeout(() => {
      this.timers = this.timers.filter((t) => t !== timer);
      if (gen === this.gen) fn();
    }, ms);
    this.timers.push(timer);
  }

  /** Put the loaded screen where the placeholder was, and move focus to its heading. */
  swap(host, node) {
    if (!host.isConnected) return;
    host.replaceWith(node);
    const title = node.querySelector(".screen-title");
    if (title && !document.querySelector("dialog[open]")) title.focus({ preventScroll: true });
  }
}

/** Fetch the e-invoice PDF (signed by the agent) and print it on the A4 printer. */
async function printInvoicePdf(orderNo, reprint) {
  const pdf = await api.pay.invoicePdf(orderNo, { reprint });
  // A reprint is a new sheet each time; a first copy is one job, so a retried request prints once.
  const jobId = reprint ? `inv-${orderNo}-r${Date.now().toString(36)}` : `inv-${orderNo}`;
  try {
    return await api.printA4(pdf, PAY.invoiceTitle, jobId);
  } catch (err) {
    if (err instanceof ApiError) err.fromPrinter = true;
    throw err;
  }
}

/**
 * What to do next when the invoice did not print. The printer's refusal (the agent's) says it
 * already (…请到人工窗口办理); the service's (not issued yet, 409, or the invoice platform away,
 * 503) gets the page's own words, since only the page knows where it can be printed later.
 */
function invoiceNextStep(err, later) {
  if (err instanceof ApiError && !err.fromPrinter && (err.status === 409 || err.status === 503)) return later;
  return err.nextStep || later;
}

/** Paper for the patient: the receipt of a paid bill, or the exception slip when money moved back. */
function needsPaper(order) {
  return order.state === "completed" || order.state === "refunded" || Boolean(order.anomaly);
}

function pause(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
