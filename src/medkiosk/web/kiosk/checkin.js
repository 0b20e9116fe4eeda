// Check-in (报到): today's registrations → 确认报到 → the queue number and position, then the page
// clears the patient's data and goes home on its own. Two taps from the menu: 报到, 确认报到.
//
// Nothing here mentions insurance: app.js leaves the patient bar's category, balance and notices
// out while these screens show. A cross-region patient checks in exactly like anyone else.

import { api } from "./api.js";
import { h, icon } from "./dom.js";
import { CHECKIN, T } from "./messages.js";

const SCREENS = new Set(["checkin", "checkin-result"]);
function heading(text) {
  return h("h1", { class: "screen-title", tabindex: "-1" }, text);
}

export class CheckInFlow {
  /**
   * @param {object} app what the flow may ask of the page (app.js)
   * @param {(name: string, params?: object, opts?: object) => void} app.show
   * @param {() => void} app.sessionGone   the service ended the session
   * @param {() => void} app.finish        check-in shown: end the session, clear everything, go home
   * @param {(text: string) => void} app.say
   */
  constructor(app) {
    this.app = app;
    this.gen = 0;
    this.timers = [];
  }

  owns(name) {
    return SCREENS.has(name);
  }

  /** Stop the countdown of the screen on display. */
  stop() {
    this.gen += 1;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers = [];
  }

  render({ name, params = {} }) {
    return name === "checkin-result" ? this.resultView(params) : this.listView();
  }

  listView() {
    const gen = this.gen;
    const host = h("section", { class: "screen checkin", dataset: { screen: "checkin", testid: "checkin" } },
      heading(CHECKIN.heading),
      h("p", { class: "waiting", role: "status" }, h("span", { class: "spinner", "aria-hidden": "true" }), CHECKIN.loading));
    api.checkin.today().then((today) => {
      if (gen === this.gen) host.replaceWith(this.listScreen(today.registrations || [], today.exams || [], today.registrations_problem));
    }, (err) => {
      if (gen !== this.gen) return;
      if (err.sessionEnded) { this.app.sessionGone(); return; }
      host.replaceWith(this.problemScreen(err));
    });
    return host;
  }

  /** `problem`: the HIS could not list the registrations, but today's exams can still check in. */
  listScreen(registrations, exams, problem) {
    const error = h("p", { class: "inline-error", role: "alert", hidden: true, dataset: { testid: "checkin-error" } });
    // Registrations first, then today's exam appointments (in window order).
    const cards = [...registrations.map((r) => this.card(r, error)), ...exams.map((e) => this.examCard(e, error))];
    return h("section", { class: "screen checkin", dataset: { screen: "checkin", testid: "checkin" } },
      heading(CHECKIN.heading),
      cards.length ? h("p", { class: "lead" }, CHECKIN.lead) : null,
      cards.length
        ? h("ul", { class: "checkin-list", dataset: { testid: "checkin-list" } }, cards)
        : h("div", { class: "panel checkin-none", dataset: { testid: "checkin-none" } },
          h("p", { class: "checkin-none-title" }, CHECKIN.none), h("p", { class: "next-step" }, CHECKIN.noneNext)),
      problem ? h("p", { class: "hint", role: "status", dataset: { testid: "checkin-registrations-problem" } },
        [problem.message, problem.next_step].filter(Boolean).join(" ")) : null,
      error);
  }

  card(r, error) {
    const open = r.status === "open";
    const button = open ? h("button", {
      type: "button", class: "btn btn-primary btn-xl", dataset: { testid: `checkin-go-${r.registration_no}` },
      onclick: () => this.checkIn({ registration_no: r.registration_no }, button, error),
    }, icon("svc-checkin", "icon"), CHECKIN.go) : null;
    return h("li", { class: ["panel", "checkin-card", !open && "is-muted"], dataset: { testid: `checkin-${r.registration_no}`, status: r.status } },
      h("div", { class: "checkin-what" },
        h("p", { class: "checkin-department" }, r.department_name),
        h("p", { class: "checkin-facts" }, CHECKIN.window(r.half_day_label, r.window), " · ", CHECKIN.queueNo(r.queue_no),
          r.doctor_name ? ` · ${CHECKIN.doctor(r.doctor_name)}` : ""),
        r.location ? h("p", { class: "checkin-place" }, r.location) : null,
        r.note ? h("p", { class: "checkin-note", dataset: { testid: `checkin-note-${r.registration_no}` } }, r.note) : null),
      button);
  }

  /** An exam appointment of today: the exam, its window and place; 确认报到 joins the exam room's queue. */
  examCard(e, error) {
    const open = e.status === "open";
    const button = open ? h("button", {
      type: "button", class: "btn btn-primary btn-xl", dataset: { testid: `checkin-exam-go-${e.order_no}` },
      onclick: () => this.checkIn({ exam_order_no: e.order_no }, button, error),
    }, icon("svc-checkin", "icon"), CHECKIN.go) : null;
    return h("li", { class: ["panel", "checkin-card", !open && "is-muted"], dataset: { testid: `checkin-exam-${e.order_no}`, status: e.status } },
      h("div", { class: "checkin-what" },
        h("p", { class: "checkin-department" }, `${CHECKIN.examTag(e.exam_label)} ${e.exam_name}`),
        h("p", { class: "checkin-facts" }, CHECKIN.examWindow(e.window), e.department_name ? ` · ${e.department_name}` : ""),
        e.place ? h("p", { class: "checkin-place" }, e.place) : null,
        e.note ? h("p", { class: "checkin-note", dataset: { testid: `checkin-exam-note-${e.order_no}` } }, e.note) : null),
      button);
  }

  async checkIn(what, button, error) {
    if (button.disabled) return;
    button.disabled = true;
    button.lastChild.textContent = CHECKIN.going;
    error.hidden = true;
    try {
      const result = await api.checkin.checkIn(what);
      this.app.show("checkin-result", { result });
    } catch (err) {
      if (err.sessionEnded) { this.app.sessionGone(); return; }
      if (!button.isConnected) return;
      error.textContent = [err.message, err.nextStep].filter(Boolean).join(" ");
      error.hidden = false;
      button.disabled = false;
      button.lastChild.textContent = CHECKIN.go;
    }
  }

  problemScreen(err) {
    return h("section", { class: "screen checkin", dataset: { screen: "checkin", testid: "checkin" } },
      h("div", { class: "panel refused-panel" },
        icon("info", "refused-icon"),
        heading(CHECKIN.problemTitle),
        h("p", { class: "refused-message", dataset: { testid: "checkin-problem" } }, err.message),
        err.nextStep ? h("div", { class: "next-step" }, h("span", { class: "next-step-label" }, T.nextStepLabel),
          h("span", {}, err.nextStep)) : null,
        h("button", { type: "button", class: "btn btn-primary btn-xl", onclick: () => this.app.show("checkin", {}, { replace: true }) },
          CHECKIN.retry)));
  }

  /** The number and the place in line for a few seconds; then the session ends by itself. */
  resultView({ result }) {
    const entry = result.entry;
    let left = Math.max(3, Math.min(10, Number(result.result_seconds) || 8));
    const countdown = h("p", { class: "checkin-leaving", dataset: { testid: "checkin-leaving" }, "aria-live": "polite" },
      CHECKIN.leaving(left));
    const note = result.rejoined === "returning" ? CHECKIN.rejoinedReturning
      : result.rejoined === "missed" ? CHECKIN.rejoinedMissed : result.already ? CHECKIN.already : "";
    const node = h("section", { class: "screen checkin-result", dataset: { screen: "checkin-result", testid: "checkin-result" } },
      h("div", { class: "panel checkin-done" },
        icon("check", "result-icon"),
        heading(CHECKIN.resultTitle),
        h("p", { class: "checkin-number-label" }, CHECKIN.yourNumber),
        h("p", { class: "checkin-number", dataset: { testid: "checkin-number" } }, CHECKIN.queueNo(entry.queue_no)),
        entry.state === "called" ? h("p", { class: "checkin-position", dataset: { testid: "checkin-position" } }, CHECKIN.called)
          : h("p", { class: "checkin-position", dataset: { testid: "checkin-position" } },
            CHECKIN.position(entry.position), "，", CHECKIN.ahead(entry.ahead)),
        h("p", { class: "checkin-place" }, CHECKIN.place(entry.department_name, entry.location)),
        note ? h("p", { class: "checkin-note" }, note) : null,
        countdown,
        h("button", { type: "button", class: "btn btn-outline btn-xl", dataset: { testid: "checkin-finish" },
          onclick: () => this.app.finish() }, CHECKIN.finish)));
    this.app.say(CHECKIN.say(entry.queue_no, entry.ahead || 0));
    const gen = this.gen;
    const tick = () => {
      if (gen !== this.gen) return;
      left -= 1;
      if (left <= 0) {
        this.app.finish();
        return;
      }
      countdown.textContent = CHECKIN.leaving(left);
      this.timers.push(setTimeout(tick, 1000));
    };
    this.timers.push(setTimeout(tick, 1000));
    return node;
  }
}
