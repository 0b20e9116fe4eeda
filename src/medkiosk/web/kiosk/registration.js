// Registration (挂号): a date and a department → a doctor's half-day → 确认挂号 → the fee, paid on the
// payment screens → the number, the slip printed, and the session ends by itself. Five taps from the
// menu to the slip: 挂号, a department, a half-day, 确认挂号, 扫码支付 (the phone scanning is not a tap).
//
// The number is held in the HIS only when the patient confirms (确认挂号): that call also starts the
// fee's payment, and for a fully covered insured patient it settles at once, so nothing may happen
// before the patient has said yes. From then on, leaving before the fee is paid (返回, 取消支付, 首页,
// 退出, the idle logout) releases the number, so it goes back on sale.
//
// The fee is paid by the payment flow itself (payment.js, payment-screens.js): this flow runs one of
// its own, whose screens it shows under its own names (reg-pay-split, reg-pay-qr, reg-pay-result) and
// whose ends it takes over — a paid fee leads to the number and the slip, not to a bill receipt.
// Registration involves money, so the 异地医保 notice shows on those payment screens as for bills.

import { api, ApiError, quietly } from "./api.js";
import { h, icon, replaceChildren } from "./dom.js";
import { formatYuan, REG, T } from "./messages.js";
import { PaymentFlow } from "./payment.js";

const SCREENS = new Set(["reg-departments", "reg-doctors", "reg-confirm", "reg-pay-split", "reg-pay-qr",
  "reg-pay-result", "reg-result"]);
/** Screens on which a number is held and its fee not paid: leaving them releases the number. */
const HELD_SCREENS = new Set(["reg-pay-split", "reg-pay-qr"]);
const RESULT_SECONDS = 12;       // the number stays this long, then the session ends and the page clears
const GHOST_TAP_MS = 400;        // 确认挂号 wakes up after this: a double tap on a half-day cannot confirm
const reg = api.registration;

export function heading(text) {
  return h("h1", { class: "screen-title", tabindex: "-1" }, text);
}

function loading(text) {
  return h("section", { class: "screen reg-loading", dataset: { screen: "reg-loading", testid: "reg-loading" } },
    heading(REG.heading),
    h("p", { class: "waiting", role: "status" }, h("span", { class: "spinner", "aria-hidden": "true" }), text));
}

export function problem(testid) {
  const box = h("div", { class: "exam-problem reg-problem", role: "alert", hidden: true, dataset: { testid } });
  return {
    node: box,
    show(message, next, ...more) {
      replaceChildren(box, h("p", { class: "exam-problem-message", dataset: { testid: `${testid}-message` } },
        message || T.networkError),
      next ? h("p", { class: "exam-problem-next", dataset: { testid: `${testid}-next` } }, `${T.nextStepLabel}${next}`) : null,
      more);
      box.hidden = false;
    },
    hide() { replaceChildren(box); box.hidden = true; },
  };
}

function fact(label, value, testid) {
  return h("div", { class: "exam-fact" }, h("dt", {}, label), h("dd", testid ? { dataset: { testid } } : {}, value || "—"));
}

export class RegistrationFlow {
  /**
   * @param {object} app what the flow may ask of the page (app.js): what the payment flow may (show,
   *   setStack, backTo, home, sessionGone, activity, outcome, longPollSeconds, say, announce), and
   * @param {() => void} app.finish            the number shown: end the session, clear everything, go home
   * @param {() => string} app.patientName     the identified patient's masked name
   */
  constructor(app) {
    this.app = app;
    this.gen = 0;
    this.timers = [];
    this.held = null;       // {registration, order}: a number held whose fee is not paid yet
    this.leaving = false;   // a release in progress (返回 tapped twice releases once)
    this.printed = new Set();
    this.date = null;       // the day chosen (YYYY-MM-DD), kept while the patient goes back and forth
    this.dates = null;      // the days offered, as the departments screen loaded them
    this.loads = 0;         // the doctors list's loads: only the latest one is drawn
    this.backToDoctors = null;  // the doctors screen the number was chosen on
    this.pay = new PaymentFlow({
      ...app,
      show: (name, params, opts) => app.show(`reg-${name}`, params, opts),
      setStack: (entries) => this.paymentEnded(entries[entries.length - 1]),
      backTo: () => this.backOut(),
    });
  }

  owns(name) { return SCREENS.has(name); }

  /** 返回 on a screen where a number is held: the payment is cancelled and the number released. */
  leavesOpenOrder(name) { return HELD_SCREENS.has(name); }

  stop() {
    this.gen += 1;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers = [];
    this.pay.stop();
  }

  forget() {
    this.stop();
    this.pay.forget();
    this.held = null;
    this.leaving = false;
    this.printed.clear();
    this.date = null;
    this.dates = null;
    this.backToDoctors = null;
  }

  render({ name, params = {} }) {
    switch (name) {
      case "reg-doctors": return this.doctorsView(params);
      case "reg-confirm": return this.confirmView(params);
      case "reg-pay-split": return this.pay.render({ name: "pay-split", params });
      case "reg-pay-qr": return this.pay.render({ name: "pay-qr", params });
      case "reg-pay-result": return this.pay.render({ name: "pay-result", params });
      case "reg-result": return this.resultView(params);
      default: return this.departmentsView();
    }
  }

  gone(err) {
    if (err instanceof ApiError && err.sessionEnded) {
      this.held = null;
      this.app.sessionGone();
      return true;
    }
    return false;
  }

  swap(host, node) {
    if (!host.isConnected) return;
    host.replaceWith(node);
    const title = node.querySelector(".screen-title");
    if (title && !document.querySelector("dialog[open]")) title.focus({ preventScroll: true });
  }

  /** A load that failed: what happened, what to do, and a way to try again (返回 and 首页 stay below). */
  problemScreen(screen, title, err, retry) {
    const box = problem("reg-error");
    box.show(err.message, err.nextStep);
    return h("section", { class: `screen ${screen}`, dataset: { screen, testid: screen } },
      h("div", { class: "panel refused-panel" },
        icon("info", "refused-icon"),
        heading(title),
        box.node,
        h("button", { type: "button", class: "btn btn-primary btn-xl", dataset: { testid: "reg-retry" }, onclick: retry },
          REG.retry)));
  }

  dateRow(dates, onChoose) {
    const row = h("div", { class: "exam-days reg-dates", role: "group", "aria-label": REG.chooseDate },
      dates.map((d) => h("button", {
        type: "button", class: "exam-day reg-date", dataset: { testid: `reg-date-${d.date}`, date: d.date },
        "aria-pressed": String(d.date === this.date),
        onclick: () => {
          this.date = d.date;
          for (const chip of row.querySelectorAll(".reg-date")) {
            chip.setAttribute("aria-pressed", String(chip.dataset.date === this.date));
          }
          if (onChoose) onChoose(d);
        },
      }, d.label)));
    return row;
  }

  // ---- tap 2: a date and a department ----------------------------------------------------------

  departmentsView() {
    const gen = this.gen;
    const host = loading(REG.loading);
    Promise.all([reg.dates(), reg.departments()]).then(([dates, tree]) => {
      if (gen !== this.gen) return;
      this.swap(host, this.departmentsScreen((dates && dates.dates) || [], (tree && tree.groups) || [],
        Boolean(tree && tree.preview)));
    }, (err) => {
      if (gen !== this.gen || this.gone(err)) return;
      this.swap(host, this.problemScreen("reg-departments", REG.heading, err,
        () => this.app.show("reg-departments", {}, { replace: true })));
    });
    return host;
  }

  /** `preview`: a test kiosk showing the hospital's unpublished draft (tender #14) says so, for the staff trying it. */
  departmentsScreen(dates, groups, preview) {
    this.dates = dates;
    if (!dates.some((d) => d.date === this.date)) this.date = dates.length ? dates[0].date : null;
    const shown = groups.filter((g) => (g.departments || []).length);
    const day = () => dates.find((d) => d.date === this.date);
    const body = shown.length
      ? shown.map((g) => h("section", { class: "reg-group", dataset: { testid: "reg-group" } },
        g.name ? h("h2", { class: "section-title reg-group-name" }, g.name) : null,
        h("div", { class: "reg-department-grid", role: "list" }, g.departments.map((d) => h("div", { role: "listitem" },
          h("button", {
            type: "button", class: "reg-department", dataset: { testid: "reg-department", name: d.name },
            onclick: () => { if (day()) this.app.show("reg-doctors", { department: d, date: day() }); },
          }, h("span", { class: "reg-department-name" }, d.name),
          d.location ? h("span", { class: "reg-department-place" }, d.location) : null))))))
      : [h("div", { class: "exam-problem", role: "alert", dataset: { testid: "reg-no-departments" } },
        h("p", { class: "exam-problem-message" }, REG.noDepartments),
        h("p", { class: "exam-problem-next" }, `${T.nextStepLabel}${REG.noDepartmentsNext}`))];
    return h("section", { class: "screen reg-departments", dataset: { screen: "reg-departments", testid: "reg-departments" } },
      heading(REG.chooseDepartment),
      preview ? h("p", { class: "reg-preview", dataset: { testid: "reg-preview" } }, REG.preview) : null,
      h("div", { class: "reg-date-bar" }, h("span", { class: "reg-date-label" }, REG.chooseDate), this.dateRow(dates)),
      h("p", { class: "lead" }, REG.departmentsLead),
      h("div", { class: "reg-groups" }, body));
  }

  // ---- tap 3: a doctor's half-day ----------------------------------------------------------------

  doctorsView({ department, date }) {
    this.date = date.date;
    const list = h("div", { class: "reg-doctors-list", dataset: { testid: "reg-doctors-list" }, "aria-live": "polite" });
    const screen = h("section", { class: "screen reg-doctors", dataset: { screen: "reg-doctors", testid: "reg-doctors" } },
      heading(REG.doctorsHeading(department.name)),
      department.location ? h("p", { class: "reg-place-line" }, `${REG.placeLabel}：${department.location}`) : null,
      h("div", { class: "reg-date-bar" }, h("span", { class: "reg-date-label" }, REG.chooseDate),
        this.dateRow(this.dates || [date], (d) => load(d))),
      list);
    const load = (day) => {
      this.loads += 1;
      const gen = this.loads;
      replaceChildren(list, h("p", { class: "waiting", role: "status", dataset: { testid: "reg-loading" } },
        h("span", { class: "spinner", "aria-hidden": "true" }), REG.loadingDoctors));
      const screenGen = this.gen;
      reg.schedules(day.date, department).then((body) => {
        if (screenGen !== this.gen || gen !== this.loads) return;
        replaceChildren(list, this.doctorCards(department, day, (body && body.doctors) || []));
      }, (err) => {
        if (screenGen !== this.gen || gen !== this.loads || this.gone(err)) return;
        const box = problem("reg-error");
        box.show(err.message, err.nextStep, h("button", { type: "button", class: "btn btn-primary btn-xl",
          dataset: { testid: "reg-retry" }, onclick: () => load(day) }, REG.retry));
        replaceChildren(list, box.node);
      });
    };
    load(date);
    return screen;
  }

  doctorCards(department, day, doctors) {
    if (!doctors.length) {
      return h("div", { class: "exam-problem", role: "alert", dataset: { testid: "reg-no-doctors" } },
        h("p", { class: "exam-problem-message" }, REG.noDoctors),
        h("p", { class: "exam-problem-next" }, `${T.nextStepLabel}${REG.noDoctorsNext}`));
    }
    return [h("p", { class: "lead" }, REG.doctorsLead),
      h("ul", { class: "reg-doctor-list" }, doctors.map((doctor) => this.doctorCard(department, day, doctor)))];
  }

  doctorCard(department, day, doctor) {
    const level = doctor.level_label
      ? h("span", { class: ["reg-level", doctor.level === "expert" && "is-expert"] }, doctor.level_label) : null;
    return h("li", { class: "reg-doctor", dataset: { testid: "reg-doctor", name: doctor.doctor_name } },
      h("div", { class: "reg-doctor-text" },
        h("p", { class: "reg-doctor-name" }, doctor.doctor_name, level),
        doctor.title ? h("p", { class: "reg-doctor-title" }, doctor.title) : null),
      h("div", { class: "reg-slots" }, (doctor.slots || []).map((slot) => this.slotButton(department, day, doctor, slot))));
  }

  /** A half-day: when, the fee and the numbers left; a full or closed one disabled, with its note. */
  slotButton(department, day, doctor, slot) {
    const left = slot.open ? REG.remaining(slot.remaining)
      : slot.note || (slot.remaining > 0 ? REG.closed : REG.full);
    return h("button", {
      type: "button", class: ["reg-slot", !slot.open && "is-full"], disabled: !slot.open,
      "aria-disabled": String(!slot.open),
      dataset: { testid: `reg-slot-${slot.half_day}`, remaining: String(slot.remaining) },
      onclick: () => this.app.show("reg-confirm", { department, date: day, doctor, slot }),
    }, h("span", { class: "reg-slot-when" }, slot.half_day_label),
    h("span", { class: "reg-slot-fee" }, formatYuan(slot.fee)),
    h("span", { class: "reg-slot-left" }, left));
  }

  // ---- tap 4: 确认挂号 ---------------------------------------------------------------------------

  confirmView({ department, date, doctor, slot }) {
    const box = problem("reg-error");
    const status = h("p", { class: "reg-status", role: "status", "aria-live": "polite", dataset: { testid: "reg-status" } });
    let busy = false;
    const confirm = async () => {
      if (busy || go.disabled) return;
      busy = true;
      go.disabled = true;
      again.disabled = true;
      box.hide();
      status.textContent = REG.holding;
      const gen = this.gen;
      let held;
      try {
        held = await reg.hold(slot.schedule_id, date.date);
      } catch (err) {
        if (gen !== this.gen || this.gone(err)) return;
        busy = false;
        go.disabled = false;
        again.disabled = false;
        status.textContent = "";
        box.show(err.message, err.nextStep);
        box.node.scrollIntoView({ block: "nearest" });
        this.app.say(`${err.message || ""}${err.nextStep || ""}`);
        return;
      }
      if (gen !== this.gen) {
        // The patient left while the number was being held: give it back.
        quietly(reg.release(held.registration.registration_no));
        return;
      }
      this.held = { registration: held.registration, order: held.payment };
      this.backToDoctors = { department, date };
      const order = held.payment;
      this.pay.proceed(order, { visitNo: order.visit && order.visit.visit_no, mode: order.mode });
    };
    const go = h("button", { type: "button", class: "btn btn-primary btn-xl reg-confirm-go", disabled: true,
      dataset: { testid: "reg-confirm-go" }, onclick: confirm }, REG.confirm);
    const again = h("button", { type: "button", class: "btn btn-outline btn-xl", dataset: { testid: "reg-choose-again" },
      onclick: () => this.app.backTo("reg-doctors") }, REG.chooseAgain);
    const gen = this.gen;
    this.later(gen, () => { if (!busy) go.disabled = false; }, GHOST_TAP_MS);
    const doctorLine = [doctor.doctor_name, doctor.title, doctor.level_label].filter(Boolean).join(" · ");
    return h("section", { class: "screen reg-confirm exam-result", dataset: { screen: "reg-confirm", testid: "reg-confirm" } },
      h("div", { class: "panel exam-result-panel" },
        heading(REG.confirmHeading),
        h("dl", { class: "exam-facts reg-facts" },
          fact(REG.patientLabel, this.app.patientName(), "reg-confirm-patient"),
          fact(REG.departmentLabel, department.name, "reg-confirm-department"),
          fact(REG.doctorLabel, doctorLine, "reg-confirm-doctor"),
          fact(REG.whenLabel, `${date.label} ${slot.half_day_label}`, "reg-confirm-when"),
          fact(REG.placeLabel, department.location, "reg-confirm-place"),
          fact(REG.feeLabel, formatYuan(slot.fee), "reg-confirm-fee")),
        h("p", { class: "lead" }, REG.confirmLead),
        box.node,
        status,
        h("div", { class: "exam-actions" }, go, again)));
  }

  // ---- the payment's ends ---------------------------------------------------------------------------

  /** The payment flow finished the fee's order (or asks for the bills, which here means: back out). */
  paymentEnded(top) {
    if (!top || top.name !== "pay-result") {
      this.backOut();
      return;
    }
    const { order, choice } = top.params;
    const held = this.held;
    if (order.state === "completed" && held) {
      this.held = null;
      this.finished(held.registration, order);
      return;
    }
    if (held && order.terminal) {
      // Refunded, closed or refused: asking for the registration follows its order, so the HIS
      // number is released (the service's sweep would do it too, later).
      this.held = null;
      quietly(reg.status(held.registration.registration_no));
    }
    // A paid registration's money goes only to the number: self-pay instead would be a new order
    // the number does not follow, so that offer is not made here (the patient registers again).
    this.app.setStack([{ name: "menu", params: {} }, { name: "reg-departments", params: {} },
      ...(this.backToDoctors ? [{ name: "reg-doctors", params: this.backToDoctors }] : []),
      { name: "reg-pay-result", params: { order: { ...order, offer_self_pay: false }, choice } }]);
  }

  /** 返回 on the split or QR screen (app.js): the payment flow cancels the order, then backs out here. */
  back() {
    if (this.leaving) return;
    quietly(this.pay.back());
  }

  /** Release the held number and show the doctors again (their numbers as they now are). */
  async backOut() {
    const held = this.held;
    this.pay.stop();
    if (!held) {
      this.app.backTo(this.backToDoctors ? "reg-doctors" : "reg-departments");
      return;
    }
    if (this.leaving) return;
    this.leaving = true;
    let after = null;
    try {
      after = (await reg.release(held.registration.registration_no)).registration;
    } catch (err) {
      this.leaving = false;
      if (this.gone(err)) return;
      // Not released from here: the service releases an unpaid hold once its payment ends.
    }
    this.leaving = false;
    this.held = null;
    if (after && after.state === "registered") {  // paid in that very moment: the number is the patient's
      this.finished({ ...held.registration, ...after });
      return;
    }
    if (after) this.app.announce(REG.released);
    this.app.backTo("reg-doctors");
  }

  /**
   * The patient leaves (首页, 退出, idle) with a number held and unpaid: release it. If the fee was
   * paid in that same moment, the number is theirs: its slip still prints.
   */
  async abandon() {
    const held = this.held;
    this.held = null;
    this.stop();
    this.pay.open = null;  // released below, with its order
    if (!held) return;
    try {
      const after = (await reg.release(held.registration.registration_no)).registration;
      if (after && after.state === "registered") await this.printSlip(after.registration_no);
    } catch {
      // Unreachable or the session gone: the service releases the hold once its payment ends.
    }
  }

  // ---- the number and the slip ----------------------------------------------------------------------

  /** The fee is paid: the number, with the 异地医保 notice of its settlement when the order carries one. */
  finished(registration, order = null) {
    const notice = (order && order.cross_region_notice) || "";
    this.app.setStack([{ name: "menu", params: {} }, { name: "reg-result", params: { registration, notice } }]);
  }

  resultView({ registration, notice }) {
    const gen = this.gen;
    const r = registration;
    const status = h("p", { class: "exam-print-status", role: "status", "aria-live": "polite", dataset: { testid: "reg-print-status" } });
    const countdown = h("p", { class: "checkin-leaving", dataset: { testid: "reg-leaving" }, "aria-live": "polite" });
    const again = h("button", { type: "button", class: "btn btn-outline btn-xl", hidden: true, dataset: { testid: "reg-print-again" },
      onclick: () => print() }, REG.printAgain);
    const when = [r.date ? `${Number(r.date.slice(5, 7))}月${Number(r.date.slice(8, 10))}日` : "", r.half_day_label, r.window]
      .filter(Boolean).join(" ");
    const node = h("section", { class: "screen reg-result", dataset: { screen: "reg-result", testid: "reg-result" } },
      h("div", { class: "panel checkin-done reg-done" },
        icon("check", "result-icon"),
        heading(REG.doneTitle),
        h("p", { class: "checkin-number-label" }, REG.yourNumber),
        h("p", { class: "checkin-number", dataset: { testid: "reg-number" } }, REG.queueNo(r.queue_no)),
        h("p", { class: "reg-go", dataset: { testid: "reg-go" } }, REG.goCheckIn),
        status,
        h("dl", { class: "exam-facts reg-facts" },
          fact(REG.departmentLabel, r.department_name, "reg-result-department"),
          fact(REG.doctorLabel, [r.doctor_name, r.level_label].filter(Boolean).join(" · "), "reg-result-doctor"),
          fact(REG.whenLabel, when, "reg-result-when"),
          fact(REG.placeLabel, r.location, "reg-result-place")),
        h("p", { class: "reg-go-more" }, REG.goCheckInMore),
        notice ? h("p", { class: "pay-notice reg-notice", dataset: { testid: "reg-cross-region" } },
          icon("info", "icon"), h("span", {}, notice)) : null,
        h("div", { class: "reg-result-actions" }, again,
          h("button", { type: "button", class: "btn btn-primary btn-xl", dataset: { testid: "reg-finish" },
            onclick: () => this.app.finish() }, REG.finish), countdown)));
    let left = RESULT_SECONDS;
    const tick = () => {
      left -= 1;
      if (left <= 0) {
        this.app.finish();
        return;
      }
      countdown.textContent = REG.leaving(left);
      this.later(gen, tick, 1000);
    };
    const print = async () => {
      again.hidden = true;
      status.textContent = REG.printing;
      try {
        await this.printSlip(r.registration_no);
      } catch (err) {
        if (gen !== this.gen || this.gone(err)) return;
        status.textContent = [err.message, err.nextStep].filter(Boolean).join(" ");
        again.hidden = false;
        return;
      }
      if (gen !== this.gen) return;
      status.textContent = REG.printed;
      // The number is on paper: a little while to read it, then the page clears itself.
      if (!countdown.textContent) {
        countdown.textContent = REG.leaving(left);
        this.later(gen, tick, 1000);
      }
    };
    print();
    this.app.say(REG.say(r.queue_no, r.location || r.department_name || ""));
    return node;
  }

  /** The slip (挂号条) to the agent's receipt printer, once per registration (its job id). */
  async printSlip(registrationNo) {
    if (this.printed.has(registrationNo)) return;
    const slip = await reg.slip(registrationNo);
    await api.printReceipt({ ...slip, job_id: `reg-${registrationNo}` });
    this.printed.add(registrationNo);
  }

  later(gen, fn, ms) {
    const timer = setTimeout(() => {
      this.timers = this.timers.filter((t) => t !== timer);
      if (gen === this.gen) fn();
    }, ms);
    this.timers.push(timer);
  }
}
