// The registration screens beside 挂号: picking up an appointment (预约取号), reprinting today's slip
// (补打挂号条) and swapping an app-paid registration to insurance (换成医保挂号, tender #11, #15, #16).
//
// Picking up and swapping end like a registration: a fee paid on the payment screens, then the number
// and its slip, then the session ends by itself. So this flow is a RegistrationFlow whose screens carry
// other names (regm-…): it keeps that flow's payment hand-off, its release of a number left unpaid and
// its result with the printed slip, and only adds the lists in front of them.

import { api, ApiError } from "./api.js";
import { h } from "./dom.js";
import { formatYuan, REG, REGM } from "./messages.js";
import { heading, problem, RegistrationFlow } from "./registration.js";

const LISTS = new Set(["regm-pickup", "regm-today", "regm-swap", "regm-swap-confirm", "regm-cancel", "regm-cancel-confirm",
  "regm-cancel-done"]);
const SCREENS = new Set([...LISTS, "regm-pay-split", "regm-pay-qr", "regm-pay-result", "regm-result"]);
const HELD_SCREENS = new Set(["regm-pay-split", "regm-pay-qr"]);
/** The registration flow's screens, as this flow shows them; its choosing screens become our list. */
const RENAMED = { "reg-pay-split": "regm-pay-split", "reg-pay-qr": "regm-pay-qr", "reg-pay-result": "regm-pay-result",
  "reg-result": "regm-result" };
const reg = api.registration;
/** How long the 退号 result stays before the session ends by itself. */
const CANCEL_DONE_SECONDS = 20;

// A day and a doctor as the lists show them.
function dayText(date) {
  return date ? `${Number(date.slice(5, 7))}月${Number(date.slice(8, 10))}日` : "";
}

function doctorLine(r) {
  return [r.doctor_name, r.level_label].filter(Boolean).join(" · ");
}

export class RegistrationMoreFlow extends RegistrationFlow {
  /** @param {object} app as for RegistrationFlow (app.js passes the same hooks). */
  constructor(app) {
    const names = { list: "regm-pickup" };
    const rename = (name) => RENAMED[name] || (name === "reg-doctors" || name === "reg-departments" ? names.list : name);
    super({
      ...app,
      show: (name, params, opts) => app.show(rename(name), params, opts),
      backTo: (name) => app.backTo(rename(name)),
      setStack: (entries) => app.setStack(entries.map((e) => ({ ...e, name: rename(e.name) }))
        .filter((e, i, all) => i === 0 || e.name !== all[i - 1].name)),
    });
    this.names = names;
    this.swapping = false;  // the number on the payment and result screens is a swap (换号)
  }

  owns(name) { return SCREENS.has(name); }

  leavesOpenOrder(name) { return HELD_SCREENS.has(name); }

  forget() {
    super.forget();
    this.swapping = false;
  }

  render({ name, params = {} }) {
    switch (name) {
      case "regm-pickup": return this.listView(name, REGM.pickupHeading, () => reg.appointments(),
        (body) => this.appointmentCards((body && body.appointments) || []));
      case "regm-today": return this.listView(name, REGM.todayHeading, () => reg.today(),
        (body) => this.todayCards((body && body.registrations) || []));
      case "regm-swap": return this.listView(name, REGM.swapHeading, () => reg.swappable(),
        (body) => this.swapCards(body || {}));
      case "regm-swap-confirm": return this.swapConfirmView(params);
      case "regm-cancel": return this.listView(name, REGM.cancelHeading, () => reg.mine(),
        (body) => this.cancelCards((body && body.registrations) || []));
      case "regm-cancel-confirm": return this.cancelConfirmView(params);
      case "regm-cancel-done": return this.cancelDoneView(params);
      case "regm-result": return this.doneView(params);
      default: return super.render({ name: Object.keys(RENAMED).find((k) => RENAMED[k] === name), params });
    }
  }

  /** A list loaded from the service: its cards, or what went wrong and what to do. */
  listView(screen, title, load, cards) {
    if (screen !== "regm-today" && screen !== "regm-cancel") this.names.list = screen;
    const gen = this.gen;
    const host = h("section", { class: "screen reg-loading", dataset: { screen, testid: "regm-loading" } },
      heading(title),
      h("p", { class: "waiting", role: "status" }, h("span", { class: "spinner", "aria-hidden": "true" }), REGM.loading));
    load().then((body) => {
      if (gen !== this.gen) return;
      this.swap(host, h("section", { class: `screen ${screen} regm-list`, dataset: { screen, testid: screen } },
        heading(title), cards(body)));
    }, (err) => {
      if (gen !== this.gen || this.gone(err)) return;
      this.swap(host, this.problemScreen(screen, title, err, () => this.app.show(screen, {}, { replace: true })));
    });
    return host;
  }

  none(text, next) {
    return h("div", { class: "panel checkin-none", dataset: { testid: "regm-none" } },
      h("p", { class: "checkin-none-title" }, text), h("p", { class: "hint" }, next));
  }

  card(r, testid, facts, actions) {
    return h("li", { class: "panel checkin-card regm-card", dataset: { testid, number: String(r.queue_no) } },
      h("div", { class: "checkin-what" },
        h("p", { class: "checkin-department" }, r.department_name, " ", h("span", { class: "regm-queue" }, REG.queueNo(r.queue_no))),
        h("p", { class: "checkin-facts" }, [doctorLine(r), [dayText(r.date), r.half_day_label, r.window].filter(Boolean).join(" ")]
          .filter(Boolean).join("　")),
        r.location ? h("p", { class: "checkin-place" }, `${REG.placeLabel}：${r.location}`) : null,
        facts),
      h("div", { class: "regm-actions" }, actions));
  }

  // ---- 预约取号 (tender #15) -------------------------------------------------------------------------

  appointmentCards(appointments) {
    if (!appointments.length) return this.none(REGM.noAppointments, REGM.noAppointmentsNext);
    return [h("p", { class: "lead" }, REGM.pickupLead),
      h("ul", { class: "checkin-list" }, appointments.map((a) => this.appointmentCard(a)))];
  }

  appointmentCard(a) {
    const box = problem(`regm-refusal-${a.registration_no}`);
    const paid = a.paid_in_app ? REGM.paidInApp(formatYuan(a.fee)) : `${REG.feeLabel} ${formatYuan(a.fee)}`;
    let busy = false;
    const go = h("button", { type: "button", class: "btn btn-primary btn-xl", dataset: { testid: "regm-pick-up" },
      onclick: async () => {
        if (busy) return;
        busy = true;
        go.disabled = true;
        const gen = this.gen;
        let picked;
        try {
          picked = await reg.pickUp(a.registration_no);
        } catch (err) {
          if (gen !== this.gen || this.gone(err)) return;
          busy = false;
          go.disabled = false;
          box.show(err.message, err.nextStep);
          this.app.say(`${err.message || ""}${err.nextStep || ""}`);
          return;
        }
        if (gen !== this.gen) return;
        this.settle(picked, false);
      } }, REGM.pickUp);
    const closed = !a.can_pick_up;
    if (closed) box.show(a.note, a.next_step);
    return this.card(a, "regm-appointment", [h("p", { class: "checkin-note" }, paid), box.node],
      closed ? null : go);
  }

  /** `{registration, payment}` from a pick-up or a swap: pay the fee if there is one, else the number at once. */
  settle({ registration, payment }, swapping) {
    this.swapping = swapping;
    if (!payment) {
      this.finished(registration);
      return;
    }
    this.held = { registration, order: payment };
    this.pay.proceed(payment, { visitNo: payment.visit && payment.visit.visit_no, mode: payment.mode });
  }

  // ---- 补打挂号条 (tender #16) -----------------------------------------------------------------------

  todayCards(registrations) {
    if (!registrations.length) return this.none(REGM.noToday, REGM.noTodayNext);
    return [h("p", { class: "lead" }, REGM.todayLead),
      h("ul", { class: "checkin-list" }, registrations.map((r) => this.todayCard(r)))];
  }

  todayCard(r) {
    let left = r.reprints_left;
    const count = h("p", { class: "checkin-note", dataset: { testid: "regm-reprints-left" } }, REGM.reprintsLeft(left));
    const status = h("p", { class: "exam-print-status", role: "status", "aria-live": "polite",
      dataset: { testid: "regm-reprint-status" } });
    const box = problem(`regm-refusal-${r.registration_no}`);
    const go = h("button", { type: "button", class: "btn btn-primary btn-xl", dataset: { testid: "regm-reprint" },
      disabled: !r.can_reprint, onclick: async () => {
        if (go.disabled) return;
        go.disabled = true;
        status.textContent = REGM.reprinting;
        const gen = this.gen;
        try {
          const slip = await reg.reprint(r.registration_no);
          await api.printReceipt({ ...slip, job_id: `regre-${r.registration_no}-${left}` });
        } catch (err) {
          if (gen !== this.gen || this.gone(err)) return;
          status.textContent = "";
          box.show(err.message, err.nextStep);
          if (err instanceof ApiError && err.status !== 409) go.disabled = false;
          return;
        }
        if (gen !== this.gen) return;
        left = Math.max(0, left - 1);
        count.textContent = REGM.reprintsLeft(left);
        status.textContent = REGM.reprinted;
        this.app.say(REGM.reprinted);
        if (left > 0) go.disabled = false;
        else box.show(REGM.limitReached, REGM.limitNext);
      } }, REGM.reprint);
    if (!r.can_reprint) box.show(r.note || REGM.limitReached, REGM.limitNext);
    return this.card(r, "regm-today-item", [count, status, box.node], go);
  }

  // ---- 换成医保挂号 (tender #11) ----------------------------------------------------------------------

  swapCards({ registrations = [], insurance_available: insured, note }) {
    if (!insured) return this.none(note || REGM.swapNeedsInsurance, REGM.swapNeedsInsuranceNext);
    if (!registrations.length) return this.none(REGM.noSwappable, REGM.noSwappableNext);
    return [h("p", { class: "lead" }, REGM.swapLead),
      h("ul", { class: "checkin-list" }, registrations.map((r) => this.card(r, "regm-swappable",
        [h("p", { class: "checkin-note" }, REGM.paidInApp(formatYuan(r.app_paid_amount)))],
        h("button", { type: "button", class: "btn btn-primary btn-xl", dataset: { testid: "regm-swap-choose" },
          onclick: () => this.app.show("regm-swap-confirm", { registration: r }) }, REGM.swapChoose))))];
  }

  swapConfirmView({ registration: r }) {
    const box = problem("regm-swap-error");
    const status = h("p", { class: "reg-status", role: "status", "aria-live": "polite" });
    let busy = false;
    const go = h("button", { type: "button", class: "btn btn-primary btn-xl", dataset: { testid: "regm-swap-go" },
      onclick: async () => {
        if (busy) return;
        busy = true;
        go.disabled = true;
        status.textContent = REGM.swapping;
        const gen = this.gen;
        let swapped;
        try {
          swapped = await reg.swapToInsurance(r.registration_no);
        } catch (err) {
          if (gen !== this.gen || this.gone(err)) return;
          busy = false;
          go.disabled = false;
          status.textContent = "";
          box.show(err.message, err.nextStep);
          return;
        }
        if (gen !== this.gen) return;
        this.settle(swapped, true);
      } }, REGM.swapGo);
    const fact = (label, value, testid) => h("div", { class: "exam-fact" }, h("dt", {}, label),
      h("dd", testid ? { dataset: { testid } } : {}, value || "—"));
    return h("section", { class: "screen regm-swap-confirm exam-result", dataset: { screen: "regm-swap-confirm",
      testid: "regm-swap-confirm" } },
    h("div", { class: "panel exam-result-panel" },
      heading(REGM.swapConfirmHeading),
      h("dl", { class: "exam-facts reg-facts" },
        fact(REG.patientLabel, this.app.patientName()),
        fact(REG.departmentLabel, r.department_name),
        fact(REG.doctorLabel, doctorLine(r)),
        fact(REG.whenLabel, [dayText(r.date), r.half_day_label, r.window].filter(Boolean).join(" ")),
        fact(REGM.numberLabel, REG.queueNo(r.queue_no), "regm-swap-number"),
        fact(REGM.appPaidLabel, formatYuan(r.app_paid_amount))),
      h("p", { class: "lead" }, REGM.swapConfirmLead),
      box.node, status,
      h("div", { class: "exam-actions" }, go)));
  }

  // ---- 退号: a number taken here, for today or later, cancelled and its fee given back -------------------

  cancelCards(registrations) {
    if (!registrations.length) return this.none(REGM.noCancellable, REGM.noCancellableNext);
    return [h("p", { class: "lead" }, REGM.cancelLead),
      h("ul", { class: "checkin-list" }, registrations.map((r) => {
        const box = problem(`regm-refusal-${r.registration_no}`);
        if (!r.can_cancel) box.show(r.note, r.next_step);
        return this.card(r, "regm-cancellable",
          [h("p", { class: "checkin-note" }, `${REG.feeLabel} ${formatYuan(r.fee)}`), box.node],
          r.can_cancel ? h("button", { type: "button", class: "btn btn-primary btn-xl", dataset: { testid: "regm-cancel-choose" },
            onclick: () => this.app.show("regm-cancel-confirm", { registration: r }) }, REGM.cancelChoose) : null);
      }))];
  }

  cancelConfirmView({ registration: r }) {
    const box = problem("regm-cancel-error");
    const status = h("p", { class: "reg-status", role: "status", "aria-live": "polite" });
    let busy = false;
    const go = h("button", { type: "button", class: "btn btn-primary btn-xl", dataset: { testid: "regm-cancel-go" },
      onclick: async () => {
        if (busy) return;
        busy = true;
        go.disabled = true;
        status.textContent = REGM.cancelling;
        const gen = this.gen;
        let done;
        try {
          done = await reg.cancel(r.registration_no);
        } catch (err) {
          if (gen !== this.gen || this.gone(err)) return;
          busy = false;
          go.disabled = false;
          status.textContent = "";
          box.show(err.message, err.nextStep);
          this.app.say(`${err.message || ""}${err.nextStep || ""}`);
          return;
        }
        if (gen !== this.gen) return;
        // Done: 返回 leads to the menu, not back to a number that is no longer there.
        this.app.setStack([{ name: "menu", params: {} },
          { name: "regm-cancel-done", params: { registration: r, result: done || {} } }]);
      } }, REGM.cancelGo);
    const fact = (label, value, testid) => h("div", { class: "exam-fact" }, h("dt", {}, label),
      h("dd", testid ? { dataset: { testid } } : {}, value || "—"));
    return h("section", { class: "screen regm-cancel-confirm exam-result", dataset: { screen: "regm-cancel-confirm",
      testid: "regm-cancel-confirm" } },
    h("div", { class: "panel exam-result-panel" },
      heading(REGM.cancelConfirmHeading),
      h("dl", { class: "exam-facts reg-facts" },
        fact(REG.patientLabel, this.app.patientName()),
        fact(REG.departmentLabel, r.department_name),
        fact(REG.doctorLabel, doctorLine(r)),
        fact(REG.whenLabel, [dayText(r.date), r.half_day_label, r.window].filter(Boolean).join(" ")),
        fact(REGM.numberLabel, REG.queueNo(r.queue_no), "regm-cancel-number"),
        fact(REG.feeLabel, formatYuan(r.fee))),
      h("p", { class: "lead regm-cancel-lead" }, REGM.cancelConfirmLead),
      box.node, status,
      h("div", { class: "exam-actions" }, go)));
  }

  /** Cancelled: where the fee goes; a little while to read it, then the session ends as after a number. */
  cancelDoneView({ registration: r, result }) {
    const gen = this.gen;
    const payment = result.payment || {};
    const refunded = result.registration && result.registration.state === "cancelled"
      && Number(payment.refunded_amount) > 0;
    const line = refunded ? REGM.cancelledRefunded(formatYuan(payment.refunded_amount)) : REGM.cancelledRefunding;
    const countdown = h("p", { class: "checkin-leaving", dataset: { testid: "regm-cancel-leaving" }, "aria-live": "polite" });
    let left = CANCEL_DONE_SECONDS;
    const tick = () => {
      left -= 1;
      if (left <= 0) {
        this.app.finish();
        return;
      }
      countdown.textContent = REG.leaving(left);
      this.later(gen, tick, 1000);
    };
    countdown.textContent = REG.leaving(left);
    this.later(gen, tick, 1000);
    this.app.say(line);
    return h("section", { class: "screen regm-cancel-done", dataset: { screen: "regm-cancel-done", testid: "regm-cancel-done" } },
      h("div", { class: "panel checkin-done reg-done" },
        heading(REGM.cancelDoneTitle),
        h("p", { class: "regm-cancel-refund", dataset: { testid: "regm-cancel-refund" } }, line),
        h("p", { class: "checkin-facts" }, [r.department_name, doctorLine(r), dayText(r.date), r.half_day_label,
          REG.queueNo(r.queue_no)].filter(Boolean).join("　")),
        h("div", { class: "reg-result-actions" },
          h("button", { type: "button", class: "btn btn-primary btn-xl", dataset: { testid: "regm-cancel-finish" },
            onclick: () => this.app.finish() }, REG.finish), countdown)));
  }

  /** The number (the registration flow's result, slip printed); after a swap, where the app's money goes. */
  doneView(params) {
    const node = super.render({ name: "reg-result", params });
    if (this.swapping) {
      // In place of the check-in hint, so the result keeps its height and 完成 stays in view.
      const line = h("p", { class: "reg-go-more regm-app-refund", dataset: { testid: "regm-app-refund" } }, REGM.appRefund);
      node.querySelector(".reg-go-more")?.replaceWith(line);
    }
    return node;
  }
}
