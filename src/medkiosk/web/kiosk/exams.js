// Exam appointments (检查预约): the patient's exam orders → a date and a time window → booked, with
// the appointment slip printed; a booking can be moved (改约) or cancelled (取消预约) within the rules.
//
// The slot page shows time windows and the places left only, earliest first (tender #8): no
// scanner, room or resource is ever named. Nothing here mentions insurance: the booking and
// cancelling screens carry no 异地医保 text (tender #2), and app.js hides the patient bar's
// insurance category while these screens show.

import { api, ApiError } from "./api.js";
import { h, icon, replaceChildren } from "./dom.js";
import { EXAM, T } from "./messages.js";

const SCREENS = new Set(["exam-orders", "exam-slots", "exam-result", "exam-cancel"]);
const exams = api.exams;

function heading(text) {
  return h("h1", { class: "screen-title", tabindex: "-1" }, text);
}

function loading(text) {
  return h("section", { class: "screen exam-loading", dataset: { screen: "exam-loading" } },
    heading(EXAM.heading),
    h("p", { class: "waiting", role: "status" }, h("span", { class: "spinner", "aria-hidden": "true" }), text));
}

function problem(testid) {
  const box = h("div", { class: "exam-problem", role: "alert", hidden: true, dataset: { testid } });
  return {
    node: box,
    show(message, next) {
      replaceChildren(box, h("p", { class: "exam-problem-message" }, message || T.networkError),
        next ? h("p", { class: "exam-problem-next" }, `${T.nextStepLabel}${next}`) : null);
      box.hidden = false;
    },
    hide() { replaceChildren(box); box.hidden = true; },
  };
}

function fact(label, value, testid) {
  return h("div", { class: "exam-fact" }, h("dt", {}, label), h("dd", testid ? { dataset: { testid } } : {}, value || "—"));
}

export class ExamFlow {
  /** @param {object} app the page's navigation (as for the payment flow): show, setStack, backTo, home, sessionGone, say */
  constructor(app) {
    this.app = app;
    this.gen = 0;
    this.printed = new Set();
  }

  owns(name) { return SCREENS.has(name); }

  stop() { this.gen += 1; }

  forget() { this.stop(); this.printed.clear(); }

  render({ name, params = {} }) {
    switch (name) {
      case "exam-slots": return this.slotsView(params);
      case "exam-result": return this.resultView(params);
      case "exam-cancel": return this.cancelView(params);
      default: return this.ordersView();
    }
  }

  gone(err) {
    if (err instanceof ApiError && err.sessionEnded) {
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

  // ---- the exam orders -------------------------------------------------------------------------

  ordersView() {
    const gen = this.gen;
    const host = loading(EXAM.loadingOrders);
    exams.orders().then((body) => {
      if (gen !== this.gen) return;
      this.swap(host, this.ordersScreen(body.orders || []));
    }, (err) => {
      if (gen !== this.gen || this.gone(err)) return;
      const box = problem("exam-error");
      box.show(err.message, err.nextStep);
      this.swap(host, h("section", { class: "screen exam-orders", dataset: { screen: "exam-orders" } },
        heading(EXAM.heading), box.node,
        h("button", { type: "button", class: "btn btn-primary btn-xl", dataset: { testid: "exam-retry" },
          onclick: () => this.app.show("exam-orders", {}, { replace: true }) }, EXAM.retry)));
    });
    return host;
  }

  ordersScreen(orders) {
    const cards = orders.map((o) => this.orderCard(o));
    return h("section", { class: "screen exam-orders", dataset: { screen: "exam-orders", testid: "exam-orders" } },
      heading(EXAM.heading),
      orders.length ? h("p", { class: "lead" }, EXAM.ordersLead)
        : h("p", { class: "lead", dataset: { testid: "exam-none" } }, EXAM.none),
      h("ul", { class: "exam-list" }, cards));
  }

  orderCard(order) {
    const b = order.booking;
    const actions = [];
    if (order.state === "bookable") {
      actions.push(h("button", { type: "button", class: "btn btn-primary btn-xl", dataset: { testid: `exam-book-${order.order_no}` },
        onclick: () => this.app.show("exam-slots", { order }) }, EXAM.book));
    } else if (order.state === "booked") {
      actions.push(h("button", { type: "button", class: "btn btn-outline", dataset: { testid: `exam-slip-${order.order_no}` },
        onclick: (e) => this.reprint(order, e.currentTarget) }, EXAM.reprintSlip));
      if (b.can_change) {
        if (b.moves_left > 0) {
          actions.push(h("button", { type: "button", class: "btn btn-outline", dataset: { testid: `exam-move-${order.order_no}` },
            onclick: () => this.app.show("exam-slots", { order }) }, EXAM.move));
        }
        actions.push(h("button", { type: "button", class: "btn btn-outline", dataset: { testid: `exam-cancel-${order.order_no}` },
          onclick: () => this.app.show("exam-cancel", { order }) }, EXAM.cancel));
      }
    }
    return h("li", { class: ["exam-card", `exam-${order.state}`], dataset: { testid: `exam-order-${order.order_no}`, state: order.state } },
      h("div", { class: "exam-card-text" },
        h("p", { class: "exam-name" }, h("span", { class: "exam-label" }, order.exam_label), order.exam_name),
        h("p", { class: "exam-meta" }, [order.department_name, order.location].filter(Boolean).join(" · ")),
        order.state === "booked" ? h("p", { class: "exam-when", dataset: { testid: `exam-when-${order.order_no}` } },
          icon("check", "icon"), `${EXAM.bookedFor}${b.date_label} ${b.label}`) : null,
        order.state === "booked" && !b.can_change ? h("p", { class: "exam-note" }, EXAM.changeClosed) : null,
        order.state === "booked" && b.can_change ? h("p", { class: "exam-note" }, EXAM.changeUntil(b.change_until)) : null,
        order.state === "elsewhere" ? h("p", { class: "exam-note" }, EXAM.elsewhere) : null,
        h("p", { class: "exam-print-status", role: "status", hidden: true })),
      h("div", { class: "exam-actions" }, actions));
  }

  async reprint(order, button) {
    const status = button.closest(".exam-card").querySelector(".exam-print-status");
    status.hidden = false;
    status.textContent = EXAM.printing;
    try {
      const slip = await exams.slip(order.order_no, true);
      await api.printReceipt(slip);
      status.textContent = EXAM.printed;
    } catch (err) {
      if (this.gone(err)) return;
      status.textContent = [err.message, err.nextStep].filter(Boolean).join(" ");
    }
  }

  // ---- the time windows ---------------------------------------------------------------------------

  slotsView({ order }) {
    const gen = this.gen;
    const host = loading(EXAM.loadingSlots);
    exams.slots(order.order_no).then((body) => {
      if (gen !== this.gen) return;
      this.swap(host, this.slotsScreen(order, body));
    }, (err) => {
      if (gen !== this.gen || this.gone(err)) return;
      const box = problem("exam-error");
      box.show(err.message, err.nextStep);
      this.swap(host, h("section", { class: "screen exam-slots", dataset: { screen: "exam-slots" } }, heading(EXAM.slotsHeading), box.node));
    });
    return host;
  }

  slotsScreen(order, body) {
    const moving = Boolean(body.moving);
    const box = problem("exam-error");
    const windowsHost = h("div", { class: "exam-windows", role: "list", dataset: { testid: "exam-windows" } });
    const days = body.days || [];
    let chosenDay = body.earliest ? body.earliest.date : (days[0] && days[0].date);
    let busy = false;

    const choose = async (w, button) => {
      if (busy) return;
      busy = true;
      box.hide();
      button.classList.add("is-busy");
      let result;
      try {
        result = moving ? await exams.move(order.order_no, w) : await exams.book(order.order_no, w);
      } catch (err) {
        busy = false;
        button.classList.remove("is-busy");
        if (this.gone(err)) return;
        box.show(err.message, err.nextStep);
        return;
      }
      this.app.setStack([{ name: "menu", params: {} }, { name: "exam-orders", params: {} },
        { name: "exam-result", params: { result, moved: moving } }]);
    };

    const drawWindows = () => {
      const day = days.find((d) => d.date === chosenDay);
      replaceChildren(windowsHost, day ? day.windows.map((w) => h("button", {
        type: "button", role: "listitem", class: ["exam-window", !w.bookable && "is-full"],
        disabled: !w.bookable, "aria-disabled": String(!w.bookable),
        dataset: { testid: `exam-window-${w.date}-${w.start}`, remaining: String(w.remaining) },
        onclick: (e) => choose(w, e.currentTarget),
      }, h("span", { class: "exam-window-time" }, w.label),
      h("span", { class: "exam-window-left" }, w.bookable ? EXAM.remaining(w.remaining) : w.reason || EXAM.full))) : []);
      for (const chip of dayRow.querySelectorAll(".exam-day")) {
        chip.setAttribute("aria-pressed", String(chip.dataset.date === chosenDay));
      }
    };

    const dayRow = h("div", { class: "exam-days", role: "group", "aria-label": EXAM.chooseDate },
      days.map((d) => h("button", {
        type: "button", class: ["exam-day", !d.bookable && "is-full"], dataset: { testid: `exam-day-${d.date}`, date: d.date },
        "aria-pressed": String(d.date === chosenDay),
        onclick: () => { chosenDay = d.date; drawWindows(); },
      }, h("span", { class: "exam-day-label" }, d.label),
      h("span", { class: "exam-day-left" }, d.bookable ? EXAM.remaining(d.remaining) : EXAM.full))));

    const first = body.earliest;
    const screen = h("section", { class: "screen exam-slots", dataset: { screen: "exam-slots", testid: "exam-slots" } },
      heading(moving ? EXAM.moveHeading : EXAM.slotsHeading),
      h("p", { class: "exam-for" }, h("span", { class: "exam-label" }, body.order.exam_label), body.order.exam_name),
      moving && body.current ? h("p", { class: "exam-note" }, EXAM.currently(`${body.current.date_label} ${body.current.label}`)) : null,
      first ? h("button", { type: "button", class: "btn btn-primary btn-xl exam-earliest", dataset: { testid: "exam-earliest" },
        onclick: (e) => choose(first, e.currentTarget) },
      h("span", {}, EXAM.earliest), h("span", { class: "exam-earliest-when" }, `${first.date_label} ${first.label}`),
      h("span", { class: "exam-window-left" }, EXAM.remaining(first.remaining)))
        : h("p", { class: "lead", dataset: { testid: "exam-no-slots" } }, EXAM.noSlots),
      box.node,
      h("h2", { class: "section-title" }, EXAM.orChoose),
      dayRow,
      windowsHost,
      h("p", { class: "hint" }, EXAM.slotsHint));
    drawWindows();
    return screen;
  }

  // ---- booked ---------------------------------------------------------------------------------------

  resultView({ result, moved }) {
    const b = result.booking;
    const status = h("p", { class: "exam-print-status", role: "status", "aria-live": "polite", dataset: { testid: "exam-print-status" } });
    const again = h("button", { type: "button", class: "btn btn-outline", hidden: true, dataset: { testid: "exam-print-again" },
      onclick: () => this.printSlip(result, status, again, true) }, EXAM.printAgain);
    const screen = h("section", { class: "screen exam-result", dataset: { screen: "exam-result", testid: "exam-result" } },
      h("div", { class: "panel exam-result-panel" },
        icon("check", "result-icon"),
        heading(moved ? EXAM.movedTitle : EXAM.bookedTitle),
        h("dl", { class: "exam-facts" },
          fact(EXAM.examLabel, result.exam_name, "exam-result-name"),
          fact(EXAM.dateLabel, b.date_label, "exam-result-date"),
          fact(EXAM.windowLabel, b.label, "exam-result-window"),
          fact(EXAM.placeLabel, b.place, "exam-result-place"),
          fact(EXAM.prepLabel, result.preparation, "exam-result-prep"),
          fact(EXAM.checkInLabel, result.check_in, "exam-result-checkin")),
        status, again,
        h("button", { type: "button", class: "btn btn-primary btn-xl", dataset: { testid: "exam-done" },
          onclick: () => this.app.home() }, EXAM.done)));
    this.printSlip(result, status, again, false);
    this.app.say(EXAM.sayBooked(b.date_label, b.label));
    return screen;
  }

  async printSlip(result, status, again, reprint) {
    const key = `${result.order_no}-${result.booking.date}-${result.booking.start}`;
    if (!reprint && this.printed.has(key)) {
      status.textContent = EXAM.printed;
      return;
    }
    status.textContent = EXAM.printing;
    again.hidden = true;
    try {
      const slip = await exams.slip(result.order_no, reprint);
      await api.printReceipt(slip);
      this.printed.add(key);
      status.textContent = EXAM.printed;
    } catch (err) {
      if (this.gone(err)) return;
      status.textContent = [err.message, err.nextStep].filter(Boolean).join(" ");
      again.hidden = false;
    }
  }

  // ---- cancelling --------------------------------------------------------------------------------------

  cancelView({ order }) {
    const b = order.booking;
    const box = problem("exam-error");
    let busy = false;
    const confirm = async (button) => {
      if (busy) return;
      busy = true;
      button.disabled = true;
      box.hide();
      try {
        const done = await exams.cancel(order.order_no);
        replaceChildren(screen, h("div", { class: "panel exam-result-panel", dataset: { testid: "exam-cancelled" } },
          icon("check", "result-icon"), heading(EXAM.cancelledTitle),
          h("p", { class: "lead" }, done.message || EXAM.cancelledLead),
          h("button", { type: "button", class: "btn btn-primary btn-xl", dataset: { testid: "exam-done" },
            onclick: () => this.app.backTo("exam-orders") }, EXAM.backToOrders)));
        screen.querySelector(".screen-title").focus({ preventScroll: true });
      } catch (err) {
        busy = false;
        button.disabled = false;
        if (this.gone(err)) return;
        box.show(err.message, err.nextStep);
      }
    };
    const screen = h("section", { class: "screen exam-cancel", dataset: { screen: "exam-cancel", testid: "exam-cancel" } },
      h("div", { class: "panel exam-result-panel" },
        heading(EXAM.cancelHeading),
        h("dl", { class: "exam-facts" },
          fact(EXAM.examLabel, order.exam_name), fact(EXAM.dateLabel, b.date_label), fact(EXAM.windowLabel, b.label),
          fact(EXAM.placeLabel, b.place)),
        h("p", { class: "lead" }, EXAM.cancelLead),
        box.node,
        h("div", { class: "exam-actions" },
          h("button", { type: "button", class: "btn btn-primary btn-xl", dataset: { testid: "exam-cancel-confirm" },
            onclick: (e) => confirm(e.currentTarget) }, EXAM.cancelConfirm),
          h("button", { type: "button", class: "btn btn-outline btn-xl", dataset: { testid: "exam-cancel-keep" },
            onclick: () => this.app.backTo("exam-orders") }, EXAM.cancelKeep))));
    return screen;
  }
}
