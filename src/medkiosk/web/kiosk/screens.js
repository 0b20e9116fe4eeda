// The kiosk's screens, one task each. Each render function returns the screen's element; the app
// (app.js) owns navigation, the patient bar, dialogs and the session, and passes its actions in.

import { h, icon } from "./dom.js";
import { MEDIA, T } from "./messages.js";

const MEDIA_ORDER = ["insurance_card", "id_card", "e_certificate", "visit_card"];

const TILE_ICONS = {
  register: "svc-register",
  appointment_pickup: "svc-pickup",
  reg_reprint: "svc-report",
  reg_swap: "svc-register",
  payment: "svc-payment",
  check_in: "svc-checkin",
  exam_booking: "svc-exam",
  reports: "svc-report",
  reprint: "svc-report",
  queries: "svc-query",
  inpatient_deposit: "svc-payment",
  inpatient_bill: "svc-query",
  discharge_settlement: "svc-bed",
};

function heading(text, level = 1) {
  // Headings take focus after navigation, so a screen reader announces the new screen.
  return h(`h${level}`, { class: "screen-title", tabindex: "-1" }, text);
}

export function serviceTile(service, onChoose) {
  const soon = !service.available;
  return h("button", {
    type: "button",
    class: ["tile", soon && "tile-soon"],
    dataset: { testid: `tile-${service.key}`, service: service.key },
    onclick: () => onChoose(service),
  },
  icon(TILE_ICONS[service.key] || "svc", "tile-icon"),
  h("span", { class: "tile-text" },
    h("span", { class: "tile-title" },
      h("span", { class: "tile-name" }, service.name),
      soon ? h("span", { class: "badge-soon", dataset: { testid: `tile-status-${service.key}` } },
        service.status_label || T.comingSoon) : null),
    service.hint ? h("span", { class: "tile-hint" }, service.hint) : null));
}

function tileGrid(services, onChoose) {
  return h("div", { class: ["tiles", (services || []).length <= 4 && "tiles-few"], role: "list" },
    (services || []).map((s) => h("div", { role: "listitem", class: "tile-cell" }, serviceTile(s, onChoose))));
}

/** The four media with their pictograms; `short` names them (home), otherwise says what to do. */
function mediaList(cls, { short = false } = {}) {
  return h("ul", { class: cls },
    MEDIA_ORDER.map((key) => h("li", { class: "medium", dataset: { medium: key } },
      h("span", { class: "medium-pict" }, icon(MEDIA[key].icon, "pict")),
      h("span", { class: "medium-label" }, short ? MEDIA[key].label : MEDIA[key].action))));
}

function waitingStatus() {
  return h("p", { class: "waiting", role: "status", "aria-live": "polite", dataset: { testid: "waiting" } },
    h("span", { class: "spinner", "aria-hidden": "true" }), T.waitingForCard);
}

function errorSlot(testid) {
  return h("p", { class: "inline-error", role: "alert", hidden: true, dataset: { testid } });
}

/** Home: who we are, one invitation naming every medium, and the services. */
export function homeScreen({ config, onStart, onTile }) {
  const screen = h("section", { class: "screen home", dataset: { screen: "home" } },
    h("div", { class: "panel invite", dataset: { testid: "home-invite" } },
      heading(T.homeWelcome),
      h("p", { class: "invite-text" }, T.invite, h("span", { class: "invite-more" }, `（${T.inviteVisitCard}）`)),
      mediaList("media-row", { short: true }),
      h("div", { class: "invite-actions" },
        h("button", { type: "button", class: "btn btn-primary btn-xl", dataset: { testid: "start" }, onclick: onStart },
          T.inviteButton),
        waitingStatus()),
      errorSlot("home-error")),
    h("div", { class: "services" },
      h("h2", { class: "section-title" }, T.tilesHeading),
      tileGrid(config.services, onTile)));
  return screen;
}

/** Identify: every medium at once, larger, and a visible waiting state. */
export function identifyScreen({ tile }) {
  return h("section", { class: "screen identify", dataset: { screen: "identify" } },
    heading(T.identifyHeading),
    h("p", { class: "lead" }, T.invite, `（${T.inviteVisitCard}）`),
    tile ? h("p", { class: "for-service" }, T.forService(tile.name)) : null,
    mediaList("media-grid"),
    waitingStatus(),
    h("p", { class: "hint" }, T.readingHint),
    errorSlot("identify-error"));
}

/** First visit: an 11-digit phone number on a big keypad. */
export function phoneScreen({ maskedName, message, onSubmit }) {
  let digits = "";
  const display = h("output", { class: "phone-display", id: "phone-display", dataset: { testid: "phone-display" },
    "aria-live": "polite", "aria-labelledby": "phone-label" });
  const error = errorSlot("phone-error");
  const progress = h("p", { class: "phone-progress", "aria-live": "polite" });
  let busy = false;

  function render() {
    const shown = [];
    for (let i = 0; i < 11; i += 1) {
      if (i === 3 || i === 7) shown.push(h("span", { class: "gap", "aria-hidden": "true" }));
      shown.push(i < digits.length
        ? h("span", { class: "digit" }, digits[i])
        : h("span", { class: "digit empty", "aria-hidden": "true" }, "_"));
    }
    display.replaceChildren(...shown);
    display.setAttribute("aria-label", digits ? digits.split("").join(" ") : T.phoneLabel);
    progress.textContent = digits.length < 11 ? T.phoneTooShort(11 - digits.length) : T.phoneReady;
  }

  function setError(text) {
    error.textContent = text || "";
    error.hidden = !text;
  }

  function press(key) {
    if (busy) return;
    setError("");
    if (key === "delete") digits = digits.slice(0, -1);
    else if (key === "clear") digits = "";
    else if (digits.length < 11) digits += key;
    render();
  }

  async function confirm() {
    if (busy) return;
    if (digits.length < 11) {
      setError(T.phoneIncomplete(11 - digits.length));
      return;
    }
    if (!/^1[3-9]\d{9}$/.test(digits)) {
      setError(T.phoneInvalid);
      return;
    }
    busy = true;
    confirmButton.disabled = true;
    progress.textContent = T.phoneSubmitting;
    try {
      const problem = await onSubmit(digits);
      if (problem) setError(problem);
    } finally {
      busy = false;
      if (confirmButton.isConnected) {
        confirmButton.disabled = false;
        render();
      }
    }
  }

  const key = (label, value, cls = "") => h("button", {
    type: "button", class: ["key", cls], dataset: { testid: `key-${value}` }, onclick: () => press(value),
  }, label);
  const confirmButton = h("button", { type: "button", class: "key key-confirm", dataset: { testid: "key-confirm" },
    onclick: confirm }, T.keyConfirm);

  const screen = h("section", { class: "screen phone", dataset: { screen: "phone" } },
    h("div", { class: "panel phone-info" },
      heading(T.phoneHeading),
      maskedName ? h("p", { class: "greeting" }, T.phoneGreeting(maskedName)) : null,
      h("p", { class: "lead" }, message || T.phoneDefault),
      h("p", { class: "field-label", id: "phone-label" }, icon("phone", "icon"), T.phoneLabel),
      display,
      progress,
      error),
    h("div", { class: "keypad", role: "group", "aria-label": "数字键盘" },
      ["1", "2", "3", "4", "5", "6", "7", "8", "9"].map((d) => key(d, d, "key-digit")),
      key(T.keyClear, "clear", "key-edit"),
      key("0", "0", "key-digit"),
      key(T.keyDelete, "delete", "key-edit"),
      confirmButton));
  render();
  return screen;
}

/** Refusal: what happened and where to go, large, and the way home. */
export function refusedScreen({ message, nextStep, onHome }) {
  return h("section", { class: "screen refused", dataset: { screen: "refused" } },
    h("div", { class: "panel refused-panel" },
      icon("info", "refused-icon"),
      heading(T.refusedHeading),
      h("p", { class: "refused-message", dataset: { testid: "refusal-message" } }, message),
      nextStep ? h("div", { class: "next-step" },
        h("span", { class: "next-step-label" }, T.nextStepLabel),
        h("span", { dataset: { testid: "refusal-next-step" } }, nextStep)) : null,
      h("button", { type: "button", class: "btn btn-primary btn-xl", dataset: { testid: "refusal-home" },
        onclick: onHome }, icon("home", "icon"), T.backHome)));
}

/** The identified patient's services. */
export function menuScreen({ services, onTile }) {
  return h("section", { class: "screen menu", dataset: { screen: "menu" } },
    heading(T.menuHeading),
    tileGrid(services, onTile));
}

export function startingScreen(failed) {
  return h("section", { class: "screen starting", dataset: { screen: "starting" } },
    h("p", { class: "waiting", role: "status" }, h("span", { class: "spinner", "aria-hidden": "true" }),
      failed ? T.startFailed : T.starting));
}

/** Show (or hide) an error message in the current screen's error slot. */
export function showInlineError(root, text) {
  const slot = root && root.querySelector(".inline-error");
  if (!slot) return false;
  slot.textContent = text || "";
  slot.hidden = !text;
  return true;
}
