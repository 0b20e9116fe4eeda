// The payment screens (门诊缴费): bills, split, QR code and result. Each render function returns
// `{ node, … }`: the element, plus setters for the parts the flow (payment.js) changes in place
// while it talks to the service. The flow owns every call and timer; these only draw.

import { h, icon, replaceChildren } from "./dom.js";
import { formatYuan, PAY, T } from "./messages.js";

const cents = (value) => Math.round(Number(value) * 100);
const fromCents = (value) => (value / 100).toFixed(2);

function heading(text, attrs = {}) {
  return h("h1", { class: "screen-title", tabindex: "-1", ...attrs }, text);
}

function statusLine(testid) {
  return h("p", { class: "pay-status", role: "status", "aria-live": "polite", dataset: { testid } });
}

/** An error shown in place: the message, what to do next, and optionally one button. */
function problemBox(testid) {
  const box = h("div", { class: "pay-problem", role: "alert", hidden: true, dataset: { testid } });
  return {
    node: box,
    show(message, nextStep, action = null) {
      replaceChildren(box,
        h("p", { class: "pay-problem-message" }, message || T.networkError),
        nextStep ? h("p", { class: "pay-problem-next" }, nextStep) : null,
        action);
      box.hidden = false;
    },
    hide() {
      replaceChildren(box);
      box.hidden = true;
    },
  };
}

/** The 异地医保 notice: only ever on payment screens (tender #2). */
function crossRegionNotice(text) {
  if (!text) return null;
  return h("p", { class: "pay-notice", dataset: { testid: "pay-cross-region" } }, icon("info", "icon"), h("span", {}, text));
}

function shortDate(iso) {
  const m = /^(\d{4})-(\d{2})-(\d{2})/.exec(iso || "");
  return m ? `${Number(m[2])}月${Number(m[3])}日` : iso || "";
}

export function payLoadingScreen(text, testid = "pay-loading") {
  return h("section", { class: "screen pay-loading", dataset: { screen: "pay-loading", testid } },
    heading(PAY.billsHeading, { class: "screen-title visually-hidden" }),
    h("p", { class: "waiting", role: "status" }, h("span", { class: "spinner", "aria-hidden": "true" }), text));
}

// ---- bills -------------------------------------------------------------------------------------

/**
 * What the patient may choose for a visit, the first being the suggested one.
 *
 * HIS is paid by whole orders (a prescription, a lab request), so "only the self-pay items" means
 * the orders made of self-pay items alone; a self-pay item written on one prescription with
 * covered drugs can only be paid with that prescription (inside the insurance settlement).
 */
export function visitChoices(visit, insuranceAvailable) {
  if (!insuranceAvailable) {
    return [{ key: "self-pay", mode: "self_pay", label: PAY.selfPayButton, amount: visit.total }];
  }
  const orders = new Map();
  for (const item of visit.items) {
    const entry = orders.get(item.order_no) || { selfPayOnly: true, amount: 0 };
    entry.selfPayOnly = entry.selfPayOnly && item.self_pay_only;
    entry.amount += cents(item.amount);
    orders.set(item.order_no, entry);
  }
  const apart = [...orders.entries()].filter(([, o]) => o.selfPayOnly);
  const apartTotal = apart.reduce((sum, [, o]) => sum + o.amount, 0);
  const total = cents(visit.total);
  const selfPayTotal = cents(visit.self_pay_only_total);
  const allSelfPay = selfPayTotal > 0 && selfPayTotal === total;
  const choices = [{
    key: "insurance", mode: "insurance", label: PAY.insuranceButton, amount: visit.total,
    hint: allSelfPay ? PAY.insuranceAccountHint
      : selfPayTotal > 0 ? PAY.insuranceAllHint(formatYuan(fromCents(selfPayTotal))) : PAY.insuranceHint,
  }];
  if (apartTotal > 0 && apartTotal === total) {
    choices.push({ key: "self-pay", mode: "self_pay", label: PAY.selfPayButton, amount: visit.total,
      hint: PAY.allSelfPayHint });
  } else if (apartTotal > 0) {
    choices.push({ key: "self-pay-items", mode: "self_pay", orderNos: apart.map(([no]) => no),
      label: PAY.selfPayItemsButton, amount: fromCents(apartTotal),
      hint: PAY.selfPayItemsHint(formatYuan(fromCents(apartTotal)), formatYuan(fromCents(total - apartTotal))) });
  }
  return choices;
}

function visitCard(visit, selected, onSelect) {
  return h("button", {
    type: "button", class: ["pay-visit", selected && "is-selected"], "aria-pressed": String(selected),
    dataset: { testid: `pay-visit-${visit.visit_no}` }, onclick: () => onSelect(visit.visit_no),
  },
  h("span", { class: "pay-visit-check", "aria-hidden": "true" }, selected ? icon("check", "icon") : null),
  h("span", { class: "pay-visit-text" },
    h("span", { class: "pay-visit-dept" }, visit.department),
    h("span", { class: "pay-visit-meta" },
      [shortDate(visit.date), PAY.visitDoctor(visit.doctor), PAY.visitItems(visit.items.length)].join(" · "))),
  h("span", { class: "pay-visit-total" }, formatYuan(visit.total)));
}

function itemRows(visit, showBadges) {
  return h("ul", { class: "pay-items", dataset: { testid: "pay-items" } },
    visit.items.map((item) => h("li", { class: "pay-item" },
      h("span", { class: "pay-item-name" }, item.name,
        showBadges && item.self_pay_only
          ? h("span", { class: "badge-self-pay", title: PAY.selfPayBadgeLong }, PAY.selfPayBadge) : null),
      h("span", { class: "pay-item-qty" }, `×${item.quantity}`),
      h("span", { class: "pay-item-amount" }, formatYuan(item.amount)))));
}

/**
 * The unpaid bills by visit. The first visit is chosen; one big button pays it (医保结算 when the
 * patient's insurance was read, else 自费支付), with the self-pay alternative beside it when
 * some of its items are not covered.
 */
export function billsScreen({ bills, onChoose, onHistory }) {
  const visits = bills.visits || [];
  const insured = Boolean(bills.insurance_available);
  let selected = visits.length ? visits[0].visit_no : null;
  let busy = false;
  const problem = problemBox("pay-error");
  const status = statusLine("pay-bills-status");
  const list = h("div", { class: "pay-visits", role: "group", "aria-label": PAY.visitsLabel(visits.length) });
  const detail = h("div", { class: "panel pay-detail", "aria-label": PAY.itemsLabel });
  const act = h("div", { class: "pay-bills-act" });
  const buttons = [];

  function choose(visit, choice) {
    if (busy) return;
    onChoose({ visitNo: visit.visit_no, mode: choice.mode, orderNos: choice.orderNos || null, visit });
  }

  function draw() {
    replaceChildren(list, ...visits.map((v) => visitCard(v, v.visit_no === selected, select)));
    const visit = visits.find((v) => v.visit_no === selected);
    if (!visit) return;
    const choices = visitChoices(visit, insured);
    buttons.length = 0;
    const actions = choices.map((choice, index) => {
      const button = h("button", {
        type: "button", class: ["btn", "btn-xl", index === 0 ? "btn-primary" : "btn-outline", "pay-choice"],
        dataset: { testid: `pay-${choice.key}` }, onclick: () => choose(visit, choice),
      }, h("span", {}, choice.label), h("span", { class: "pay-choice-amount" }, formatYuan(choice.amount)));
      buttons.push(button);
      return h("div", { class: "pay-action" },
        index > 0 ? h("p", { class: "pay-or" }, PAY.orChoose) : null,
        button,
        choice.hint ? h("p", { class: "pay-hint" }, choice.hint) : null);
    });
    replaceChildren(detail,
      h("div", { class: "pay-detail-head" },
        h("h2", { class: "section-title" }, `${visit.department} · ${PAY.visitDoctor(visit.doctor)}`),
        h("span", { class: "pay-detail-date" }, shortDate(visit.date))),
      itemRows(visit, insured),
      h("p", { class: "pay-total" }, h("span", {}, PAY.total),
        h("strong", { dataset: { testid: "pay-total" } }, formatYuan(visit.total))));
    replaceChildren(act,
      insured ? crossRegionNotice(bills.cross_region_notice) : null,
      h("div", { class: "pay-actions" }, actions),
      !insured && bills.category !== "self_pay" ? h("p", { class: "pay-hint" }, PAY.noInsuranceHint) : null,
      status,
      problem.node,
      onHistory ? historyButton(onHistory) : null);
  }

  function select(visitNo) {
    if (busy || visitNo === selected) return;
    selected = visitNo;
    problem.hide();
    draw();
  }

  const node = h("section", { class: "screen pay-bills", dataset: { screen: "pay-bills", testid: "pay-bills" } },
    h("div", { class: "pay-bills-side" },
      h("div", { class: "pay-bills-title" }, heading(PAY.billsHeading),
        h("span", { class: "pay-bills-count" }, PAY.visitsLabel(visits.length))),
      list),
    detail,
    act);
  draw();
  return {
    node,
    setBusy(on, text = "") {
      busy = on;
      for (const b of buttons) b.disabled = on;
      status.textContent = text;
    },
    showProblem: problem.show,
    hideProblem: problem.hide,
  };
}

export function noBillsScreen({ onDone, onHistory }) {
  return h("section", { class: "screen pay-none", dataset: { screen: "pay-bills", testid: "pay-none" } },
    h("div", { class: "panel pay-result-panel" },
      icon("check", "pay-result-icon"),
      heading(PAY.noBills),
      h("p", { class: "lead" }, PAY.noBillsNext),
      h("div", { class: "pay-result-actions" },
        h("button", { type: "button", class: "btn btn-primary btn-xl", dataset: { testid: "pay-done" }, onclick: onDone },
          PAY.done),
        onHistory ? historyButton(onHistory) : null)));
}

function historyButton(onHistory) {
  return h("button", { type: "button", class: "btn btn-outline btn-xl", dataset: { testid: "pay-history" },
    onclick: onHistory }, icon("printer", "icon"), h("span", {}, PAY.historyButton));
}

/**
 * A printing state shown in place: kind "busy" | "done" | "failed"; a failure says what the
 * printer or the service said, and what to do next.
 */
function printLine(testid) {
  const node = h("div", { class: "pay-print", role: "status", "aria-live": "polite", hidden: true,
    dataset: { testid } });
  return {
    node,
    set(kind, text, next = "", action = null) {
      node.hidden = false;
      node.className = `pay-print is-${kind}`;
      replaceChildren(node,
        kind === "busy" ? h("span", { class: "spinner", "aria-hidden": "true" }) : icon("printer", "icon"),
        h("div", {}, h("p", { class: "pay-print-text" }, text), next ? h("p", { class: "pay-print-next" }, next) : null),
        action);
    },
  };
}

/** The large 打印电子票据（A4） button; the flow relabels it once a copy is out. */
function invoiceButton(testid, onInvoice) {
  const label = h("span", {}, PAY.invoiceA4);
  const button = h("button", { type: "button", class: "btn btn-outline btn-xl pay-invoice", dataset: { testid },
    onclick: onInvoice }, icon("printer", "icon"), label);
  return { button, label };
}

/** The bills could not be read: say why, and where to go. */
export function billsProblemScreen({ message, nextStep, onRetry }) {
  return h("section", { class: "screen pay-none", dataset: { screen: "pay-bills", testid: "pay-bills-problem" } },
    h("div", { class: "panel pay-result-panel is-problem" },
      icon("info", "pay-result-icon"),
      heading(message || T.networkError),
      nextStep ? h("p", { class: "lead" }, nextStep) : null,
      h("button", { type: "button", class: "btn btn-primary btn-xl", dataset: { testid: "pay-retry" }, onclick: onRetry },
        PAY.retry)));
}

// ---- split -------------------------------------------------------------------------------------

function splitRow(label, amount, testid, cls = "") {
  return h("div", { class: ["pay-row", cls] },
    h("dt", {}, label), h("dd", { dataset: { testid } }, formatYuan(amount)));
}

/** How the bill divides (费用合计 / 医保统筹 / 个人账户 / 现金), very large, and how to pay the cash. */
export function splitScreen({ order, onQr, onCard }) {
  const split = order.split || { total: order.his_total, fund: "0.00", account: "0.00", cash: order.his_total };
  const insurance = order.mode === "insurance";
  const cashDue = cents(split.cash) > 0;
  const status = statusLine("pay-split-status");
  const problem = problemBox("pay-error");
  const qrButton = h("button", {
    type: "button", class: "btn btn-primary pay-method", dataset: { testid: "pay-qr" }, onclick: onQr,
    disabled: order.state !== "presettled" || !cashDue,
  }, icon("pay-qr", "pay-method-icon"),
  h("span", { class: "pay-method-text" }, h("span", { class: "pay-method-name" }, PAY.qrButton),
    h("span", { class: "pay-method-sub" }, PAY.qrWallets)));
  const cardButton = h("button", {
    type: "button", class: "btn btn-outline pay-method", dataset: { testid: "pay-bank-card" }, onclick: onCard,
    disabled: order.state !== "presettled" || !cashDue,
  }, icon("bank-card", "pay-method-icon"),
  h("span", { class: "pay-method-text" }, h("span", { class: "pay-method-name" }, PAY.bankCard),
    h("span", { class: "pay-method-sub" }, PAY.bankCardSub)));
  const methods = cashDue ? h("div", { class: "panel pay-methods" },
    h("h2", { class: "section-title" }, PAY.methodHeading),
    qrButton,
    cardButton,
    status, problem.node)
    : h("div", { class: "panel pay-methods" }, h("p", { class: "waiting", role: "status" },
      h("span", { class: "spinner", "aria-hidden": "true" }), PAY.cashZero), problem.node);

  const rows = insurance
    ? [splitRow(PAY.rowTotal, split.total, "split-total"), splitRow(PAY.rowFund, split.fund, "split-fund"),
      splitRow(PAY.rowAccount, split.account, "split-account"),
      splitRow(PAY.rowCash, split.cash, "split-cash", "pay-row-cash")]
    : [splitRow(PAY.rowTotal, split.total, "split-total"),
      splitRow(PAY.rowCash, split.cash, "split-cash", "pay-row-cash")];
  const node = h("section", { class: "screen pay-split", dataset: { screen: "pay-split", testid: "pay-split" } },
    h("div", { class: "panel pay-split-panel" },
      heading(PAY.splitHeading),
      h("p", { class: "pay-visit-line" }, PAY.splitVisit(order.visit || {})),
      insurance ? null : h("p", { class: "pay-mode-note" }, PAY.selfPayMode),
      h("dl", { class: "pay-rows" }, rows)),
    h("div", { class: "pay-split-side" }, crossRegionNotice(order.cross_region_notice), methods));
  return {
    node,
    setBusy(on, text = "") {
      qrButton.disabled = on || order.state !== "presettled";
      cardButton.disabled = qrButton.disabled;
      status.textContent = text;
    },
    setStatus(text) { status.textContent = text; },
    showProblem: problem.show,
  };
}

// ---- QR code -----------------------------------------------------------------------------------

/**
 * The QR code, large, with the prompt right under it so its arrows point at the code; the amount
 * above; the countdown, the payment-code alternative and 取消支付 beside it.
 */
export function qrScreen({ order, qrUrl, onCancel }) {
  const amount = (order.split && order.split.cash) || order.his_total;
  const status = statusLine("pay-status");
  const countdown = h("p", { class: "pay-countdown", dataset: { testid: "pay-countdown" } });
  const problem = problemBox("pay-error");
  // Without a code (a payment code is being confirmed on the phone) there is nothing to point at.
  const codeBox = qrUrl
    ? h("div", { class: "pay-qr-box" },
      h("img", { class: "pay-qr-img", src: qrUrl, alt: PAY.qrHeading, width: "420", height: "420",
        dataset: { testid: "qr-code" } }))
    : h("div", { class: "pay-qr-box is-phone" }, icon("pay-qr", "pay-qr-phone"),
      h("p", { class: "pay-qr-phone-text" }, PAY.confirmOnPhone));
  const prompt = qrUrl ? h("p", { class: "pay-qr-prompt", dataset: { testid: "qr-prompt" } }, PAY.qrPrompt) : null;
  const how = h("p", { class: "pay-qr-how", hidden: !qrUrl }, PAY.qrHow);
  const codeHint = h("div", { class: "panel pay-code-hint", hidden: !qrUrl, dataset: { testid: "pay-code-hint" } },
    icon("scanner", "pay-side-pict"),
    h("div", {}, h("p", { class: "pay-code-title" }, PAY.codeHintTitle), h("p", {}, PAY.codeHint)));
  const cancelButton = h("button", { type: "button", class: "btn btn-outline btn-xl pay-cancel",
    dataset: { testid: "pay-cancel" }, onclick: onCancel }, PAY.cancel);
  const node = h("section", {
    class: "screen pay-qr", dataset: { screen: "pay-qr", testid: "pay-qr-screen", order: order.order_no },
  },
  h("div", { class: "panel pay-qr-panel" },
    heading(PAY.qrHeading, { class: "screen-title visually-hidden" }),
    h("p", { class: "pay-qr-amount" }, h("span", {}, PAY.qrAmount),
      h("strong", { dataset: { testid: "pay-amount" } }, formatYuan(amount))),
    codeBox,
    prompt),
  h("div", { class: "pay-qr-side" },
    h("div", { class: "panel pay-qr-info" },
      icon("clock", "pay-side-icon"),
      countdown,
      status),
    how,
    codeHint,
    problem.node,
    cancelButton,
    h("p", { class: "pay-order-no" }, PAY.orderNo(order.order_no))));
  return {
    node,
    setCountdown(text) { countdown.textContent = text; },
    setStatus(text) { status.textContent = text; },
    /** The channel has the money (or waits for the phone): the code is no longer needed. */
    hideCode(text) {
      if (qrUrl) codeBox.classList.add("is-done");
      if (prompt) prompt.hidden = true;
      how.hidden = true;
      codeHint.hidden = true;
      status.textContent = text;
    },
    setCancelBusy(on) { cancelButton.disabled = on; },
    showProblem: problem.show,
    hideProblem: problem.hide,
  };
}

// ---- result ------------------------------------------------------------------------------------

function resultTitle(order) {
  if (order.state === "completed") return PAY.successTitle;
  if (order.state === "closed") return PAY.closedTitle;
  if (order.anomaly) return order.terminal ? PAY.anomalyTitle : PAY.anomalyRefundingTitle;
  if (order.state === "refunded") return PAY.refundedTitle;
  if (order.state === "refunding" || order.state === "unwinding") return PAY.refundingTitle;
  if (order.state === "failed") return PAY.failedTitle;
  return PAY.pendingTitle;
}

function fact(label, value, testid) {
  return h("div", { class: "pay-fact" }, h("dt", {}, label), h("dd", { dataset: { testid } }, value));
}

/**
 * 缴费成功 with the receipt and invoice numbers, or what went wrong in plain words, what was paid
 * and given back, and where to go; the receipt (or exception slip) printing state.
 */
export function resultScreen({ order, moreBills, onDone, onMore, onPrintAgain, onInvoice, onSelfPay, onRetry }) {
  const ok = order.state === "completed";
  const problem = problemBox("pay-error");
  const moneyMoved = cents(order.paid_amount) > 0 || cents(order.refunded_amount) > 0;
  const printStatus = h("div", { class: "pay-print", role: "status", "aria-live": "polite", hidden: true,
    dataset: { testid: "print-status" } });
  const invoiceStatus = printLine("invoice-status");
  const invoice = ok ? invoiceButton("invoice-a4", onInvoice) : null;
  const facts = [];
  if (ok) {
    const split = order.split || {};
    if (order.mode === "insurance" && split.total) {
      facts.push(fact(PAY.rowTotal, formatYuan(split.total), "result-total"));
      facts.push(fact(PAY.rowFund, formatYuan(split.fund), "result-fund"));
      facts.push(fact(PAY.rowAccount, formatYuan(split.account), "result-account"));
      facts.push(fact(PAY.rowCash, formatYuan(split.cash), "paid-amount"));
    } else {
      facts.push(fact(PAY.paidLabel, formatYuan(split.cash != null ? split.cash : order.paid_amount), "paid-amount"));
    }
    facts.push(fact(PAY.receiptNo, order.receipt_no || "—", "receipt-no"));
    facts.push(fact(PAY.invoiceNo, order.invoice_no || PAY.invoicePending, "invoice-no"));
  } else if (moneyMoved) {
    facts.push(fact(PAY.paidAmount, formatYuan(order.paid_amount), "paid-amount"));
    facts.push(fact(PAY.refundedAmount, formatYuan(order.refunded_amount), "refunded-amount"));
  }
  const nextStep = ok ? "" : order.next_step || (order.anomaly ? PAY.toCashier : "");
  const actions = [];
  if (!ok && order.offer_self_pay && onSelfPay) {
    actions.push(h("button", { type: "button", class: "btn btn-primary btn-xl", dataset: { testid: "pay-offer-self-pay" },
      onclick: onSelfPay }, PAY.offerSelfPay));
  }
  const canRetry = order.state === "closed" || (order.state === "failed" && !order.offer_self_pay);
  if (!ok && !order.anomaly && canRetry && onRetry) {
    actions.push(h("button", { type: "button", class: ["btn", "btn-xl", actions.length ? "btn-outline" : "btn-primary"],
      dataset: { testid: "pay-retry" }, onclick: onRetry }, PAY.retry));
  }
  actions.push(h("button", { type: "button", class: ["btn", "btn-xl", actions.length ? "btn-outline" : "btn-primary"],
    dataset: { testid: "pay-done" }, onclick: onDone }, PAY.done));
  if (ok && moreBills) {
    actions.push(h("button", { type: "button", class: "btn btn-outline btn-xl", dataset: { testid: "pay-more" },
      onclick: onMore }, PAY.more));
  }
  if (invoice) actions.unshift(invoice.button);

  const side = [
    !ok && cents(order.refunded_amount) > 0 ? h("p", { class: "pay-hint" }, PAY.refundNote) : null,
    nextStep ? h("div", { class: "next-step" },
      h("span", { class: "next-step-label" }, T.nextStepLabel),
      h("span", { dataset: { testid: "result-next-step" } }, nextStep)) : null,
    crossRegionNotice(order.cross_region_notice),
    printStatus,
    invoiceStatus.node,
    problem.node,
  ];
  const node = h("section", {
    class: "screen pay-result", dataset: { screen: "pay-result", testid: "pay-result", state: order.state },
  },
  h("div", { class: ["panel", "pay-result-panel", !ok && "is-problem"] },
    h("div", { class: "pay-result-head" },
      icon(ok ? "check" : "info", "pay-result-icon"),
      h("div", {},
        heading(resultTitle(order), { dataset: { testid: "result-title" } }),
        ok ? h("p", { class: "lead" }, PAY.successLead)
          : h("p", { class: "pay-result-message", dataset: { testid: "result-message" } }, order.message || ""))),
    h("div", { class: ["pay-result-body", !facts.length && "no-facts"] },
      facts.length ? h("dl", { class: "pay-facts" }, facts) : null,
      h("div", { class: "pay-result-side" }, side)),
    !ok && order.offer_self_pay && onSelfPay ? h("p", { class: "pay-offer-hint" }, PAY.offerSelfPayHint) : null,
    h("div", { class: "pay-result-actions" }, actions)));

  return {
    node,
    showProblem: problem.show,
    /** The A4 e-invoice: kind "busy" | "done" | "failed", with the printer's or the service's words. */
    setInvoice(kind, text, next = "") {
      invoiceStatus.set(kind, text, next);
      if (!invoice) return;
      invoice.button.disabled = kind === "busy";
      if (kind === "done") invoice.label.textContent = PAY.invoiceA4Again;
    },
    /** kind: "busy" | "done" | "failed"; a failure shows the printer's words and 重新打印. */
    setPrint(kind, text, next = "") {
      printStatus.hidden = false;
      printStatus.className = `pay-print is-${kind}`;
      replaceChildren(printStatus,
        kind === "busy" ? h("span", { class: "spinner", "aria-hidden": "true" }) : icon("printer", "icon"),
        h("div", {},
          h("p", { class: "pay-print-text" }, text),
          next ? h("p", { class: "pay-print-next" }, next) : null),
        kind === "failed" ? h("button", { type: "button", class: "btn btn-outline", dataset: { testid: "print-again" },
          onclick: onPrintAgain }, PAY.printAgain) : null);
    },
  };
}

// ---- payment history (缴费记录) --------------------------------------------------------------------

function historyCard(payment, onPrint) {
  const ok = payment.state === "completed";
  const visit = payment.visit || {};
  const line = printLine(`history-print-${payment.order_no}`);
  const invoice = ok ? invoiceButton(`history-invoice-${payment.order_no}`, () => onPrint(payment)) : null;
  const paid = (payment.split && payment.split.total) || payment.his_total;
  const node = h("li", { class: "panel pay-history-card", dataset: { testid: `history-${payment.order_no}` } },
    h("div", { class: "pay-history-head" },
      h("span", { class: "pay-visit-dept" }, [visit.department, shortDate(payment.created_at)].filter(Boolean).join(" · ")),
      h("strong", { class: "pay-visit-total" }, formatYuan(paid))),
    h("p", { class: "pay-history-meta" }, [
      ok ? PAY.historyPaid : PAY.historyRefunded,
      payment.receipt_no ? `${PAY.receiptNo} ${payment.receipt_no}` : "",
      ok ? (payment.invoice_no ? `${PAY.invoiceNo} ${payment.invoice_no}` : PAY.historyNoInvoice) : "",
    ].filter(Boolean).join(" · ")),
    invoice ? invoice.button : null,
    line.node);
  return {
    node,
    set(kind, text, next = "") {
      line.set(kind, text, next);
      if (!invoice) return;
      invoice.button.disabled = kind === "busy";
    },
  };
}

/** The patient's kiosk payments of the last 30 days, each completed one with 打印电子票据（A4）. */
export function historyScreen({ payments, onPrint, onBack }) {
  const cards = new Map();
  const list = payments.length
    ? h("ul", { class: "pay-history-list", dataset: { testid: "pay-history-list" } }, payments.map((payment) => {
      const card = historyCard(payment, onPrint);
      cards.set(payment.order_no, card);
      return card.node;
    }))
    : h("div", { class: "panel pay-result-panel", dataset: { testid: "pay-history-none" } },
      h("p", { class: "lead" }, PAY.historyNone), h("p", {}, PAY.historyNoneNext));
  const node = h("section", { class: "screen pay-history", dataset: { screen: "pay-history", testid: "pay-history-screen" } },
    heading(PAY.historyHeading),
    h("p", { class: "lead" }, PAY.historyLead),
    list,
    h("div", { class: "pay-result-actions" },
      h("button", { type: "button", class: "btn btn-primary btn-xl", dataset: { testid: "pay-history-back" },
        onclick: onBack }, PAY.historyBack)));
  return {
    node,
    setPrint(orderNo, kind, text, next = "") {
      const card = cards.get(orderNo);
      if (card) card.set(kind, text, next);
    },
  };
}
