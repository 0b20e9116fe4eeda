// The kiosk page: navigation between screens, identification by long-poll, the patient bar, the
// session clock, dialogs, and clearing every trace of a patient when their session ends.
//
// Identity never comes from the page: the agent's readers identify the patient and the page only
// learns the masked result. The page keeps nothing in storage, cookies or history.

import { api, ApiError, quietly } from "./api.js";
import { DemoPanel } from "./demo-panel.js";
import { clear, h, icon, replaceChildren } from "./dom.js";
import { formatDate, formatTime, formatYuan, REGM, T } from "./messages.js";
import { PaymentFlow } from "./payment.js";
import { DocumentFlow } from "./documents.js";
import { ExamFlow } from "./exams.js";
import { CheckInFlow } from "./checkin.js";
import { RegistrationFlow } from "./registration.js";
import { RegistrationMoreFlow } from "./registration-more.js";
import {
  homeScreen, identifyScreen, menuScreen, phoneScreen, refusedScreen, showInlineError, startingScreen,
} from "./screens.js";
import { SessionClock } from "./session-clock.js";
import { hush, initSpeech, say } from "./speech.js";

const $ = (id) => document.getElementById(id);
const ROOT_SCREENS = new Set(["home", "menu", "starting"]);

const state = {
  config: null,
  session: null,
  stack: [],            // [{name, params}]: the page's own back stack (never browser history)
  pendingTile: null,    // a tile chosen before identifying
  polling: false,
  pollAbort: null,
  ending: false,
  idleTimer: null,
  screenName: null,     // the screen on display
};

const ui = {};
let demoPanel = null;
let loadedPageVersion = null;  // the release this page was loaded from (see reloadIfNewPage)
const ABANDON_WAIT_MS = 8000;  // at most this long to cancel an open payment when the session ends

const clock = new SessionClock({
  onTick: (left) => showCountdown(left),
  onWarn: (left) => openWarning(left),
  onExpire: () => endSession("idle"),
  onGone: () => endSession("gone"),
  extend: () => api.extend(),
  check: () => api.session(),
});

// What every flow may do to the page: navigate, end the session, speak. Exam booking and the A4
// papers need no more; payment adds money, insurance and long-poll hooks on top.
const flowApp = {
  show: (name, params, opts) => show(name, params, opts),
  setStack: (entries) => {
    state.stack = entries;
    render(current());
  },
  backTo,
  home: () => goHome(),
  sessionGone: () => endSession("gone"),
  say: (text) => say(text),
};

const payApp = {
  ...flowApp,
  activity: () => { if (state.session) clock.activity(); },
  outcome: (outcome) => handleOutcome(outcome),
  comingSoon: (name) => openInfo({ title: T.comingSoonTitle(name), body: T.comingSoonBody, next: T.comingSoonNext,
    iconName: "info", testid: "coming-soon-dialog" }),
  longPollSeconds: () => (state.config && state.config.long_poll_seconds) || 25,
  announce: (text) => announce(text),
};
const payment = new PaymentFlow(payApp);
// Registration (挂号) pays its fee with a payment flow of its own, and ends the session after the number.
const registration = new RegistrationFlow({
  ...payApp,
  finish: () => endSession("logout"),
  patientName: () => (state.session && state.session.patient && state.session.patient.masked_name) || "",
});

// 预约取号, 补打挂号条, 换成医保挂号: a registration flow of its own, ending as registration does.
const registrationMore = new RegistrationMoreFlow({
  ...payApp,
  finish: () => endSession("logout"),
  patientName: () => (state.session && state.session.patient && state.session.patient.masked_name) || "",
});

const exams = new ExamFlow(flowApp);
const documents = new DocumentFlow(flowApp);
// Check-in (报到): shows the queue number for a few seconds, then ends the session by itself.
const checkin = new CheckInFlow({
  show: (name, params, opts) => show(name, params, opts),
  sessionGone: () => endSession("gone"),
  finish: () => endSession("logout"),
  say: (text) => say(text),
});
/** Screens without money: the patient bar hides the insurance category (跨省异地医保 …) there (tender #2). */
// The 异地医保 label belongs to payment, settlement, receipt and invoice screens only (tender #1,
// #2): elsewhere a cross-region patient's chip is hidden; exam, document and check-in screens never
// show the category at all.
const hidesCategory = (name) => exams.owns(name) || documents.owns(name) || checkin.owns(name);
const CROSS_REGION = "异地";

// ---- start ----------------------------------------------------------------------------------

async function boot() {
  ui.screen = $("screen");
  ui.patientBar = $("patient-bar");
  ui.notices = $("notices");
  ui.announcer = $("announcer");
  initSpeech();
  wireChrome();
  tickClock();
  setInterval(tickClock, 1000);
  render({ name: "starting" });

  for (let attempt = 0; ; attempt += 1) {
    try {
      state.config = await api.config();
      break;
    } catch {
      render({ name: "starting", params: { failed: true } });
      await pause(Math.min(2000 + attempt * 1000, 10_000));
    }
  }
  applyConfig(state.config);
  loadedPageVersion = state.config.page_version || null;
  await endLeftoverSession();
  goHome();
  setInterval(checkPageVersion, Math.max(1, state.config.page_check_seconds || 30) * 1000);
}

/**
 * A new page release the agent has switched to takes effect here: the page reloads itself, but only
 * between patients (no session, the home screen showing), never under someone's hands.
 */
function reloadIfNewPage(config) {
  const version = config && config.page_version;
  if (!version || !loadedPageVersion || version === loadedPageVersion) return false;
  if (state.session || state.ending || (current() && current().name !== "home")) return false;
  location.reload();
  return true;
}

async function checkPageVersion() {
  if (state.session || state.ending || (current() && current().name !== "home")) return;
  try {
    reloadIfNewPage(await api.config());
  } catch {
    // The agent is busy or restarting: ask again next time.
  }
}

function applyConfig(config) {
  $("hospital-name").textContent = config.hospital_name || "";
  $("terminal").textContent = [config.terminal_label, config.device_name].filter(Boolean).join(" · ");
  document.title = `${config.hospital_name || ""} ${T.pageTitle}`.trim();
  if (config.demo && !demoPanel) {
    document.body.classList.add("demo-mode");
    demoPanel = new DemoPanel($("demo"));
  }
}

/**
 * 补打挂号条, 换成医保挂号 and 退号 are registration's own screens: their tiles follow 当日挂号's, right after
 * 预约取号 (or 当日挂号), open when it is open. Only on the menu: they need a patient, and the home
 * screen must keep every tile in view at 1280 × 1024. The service's catalogue knows only 挂号.
 */
function withRegistrationTiles(services) {
  const register = services.find((s) => s.key === "register");
  if (!register || !register.available || services.some((s) => s.key === "reg_reprint")) return services;
  const tile = (key, name, hint) => ({ key, name, hint, available: true, needs_patient: true, status_label: "" });
  const after = services.findIndex((s) => s.key === "appointment_pickup");
  const at = (after >= 0 ? after : services.indexOf(register)) + 1;
  return [...services.slice(0, at), tile("reg_reprint", REGM.reprintTile, REGM.reprintTileHint),
    tile("reg_swap", REGM.swapTile, REGM.swapTileHint), tile("reg_cancel", REGM.cancelTile, REGM.cancelTileHint),
    ...services.slice(at)];
}

/** A session still open from before this page loaded belongs to someone who has gone. */
async function endLeftoverSession() {
  try {
    const body = await api.session();
    if (body && body.session) {
      await api.logout().catch(() => {});
      await api.sessionEnded().catch(() => {});
    }
  } catch {
    // Unreachable service: nothing to end from here.
  }
}

function wireChrome() {
  $("nav-back").addEventListener("click", back);
  $("nav-home").addEventListener("click", () => goHome());
  $("nav-large-text").addEventListener("click", () => setLargeText(!document.documentElement.classList.contains("large-text")));
  $("nav-staff-call").addEventListener("click", callStaff);
  $("patient-logout").addEventListener("click", () => endSession("logout"));
  $("warn-more").addEventListener("click", moreTime);
  $("warn-exit").addEventListener("click", () => endSession("logout"));
  $("warn-dialog").addEventListener("cancel", (event) => event.preventDefault());
  $("info-ok").addEventListener("click", () => $("info-dialog").close());
  $("info-dialog").addEventListener("close", restoreFocus);
  // Every touch or key is activity: it restarts the idle countdown (demo drawer excluded).
  const activity = (event) => {
    if (event.target instanceof Element && event.target.closest("#demo")) return;
    if (state.session) clock.activity();
    else armIdleTimer();
  };
  document.addEventListener("pointerdown", activity, { capture: true });
  document.addEventListener("keydown", activity, { capture: true });
}

function tickClock() {
  const now = new Date();
  $("date").textContent = formatDate(now);
  $("time").textContent = formatTime(now);
}

// ---- navigation -----------------------------------------------------------------------------

function render(entry) {
  const { name, params = {} } = entry;
  payment.stop();  // the payment screen on display (if any) stops polling; its order stays open
  exams.stop();
  documents.stop();
  checkin.stop();
  registration.stop();
  let node;
  switch (name) {
    case "home":
      node = homeScreen({ config: state.config, onStart: () => startIdentify(null), onTile: chooseTile });
      break;
    case "identify":
      node = identifyScreen({ tile: params.tile });
      say(T.sayIdentify);
      break;
    case "phone":
      node = phoneScreen({ maskedName: params.maskedName, message: params.message, onSubmit: submitPhone });
      say(T.sayPhone);
      break;
    case "refused":
      node = refusedScreen({ message: params.message, nextStep: params.nextStep, onHome: () => goHome() });
      say(`${params.message || ""}${params.nextStep || ""}`);
      break;
    case "menu":
      node = menuScreen({ services: withRegistrationTiles(state.config.services || []), onTile: chooseTile });
      break;
    default:
      if (payment.owns(name)) node = payment.render(entry);
      else if (exams.owns(name)) node = exams.render(entry);
      else if (documents.owns(name)) node = documents.render(entry);
      else if (checkin.owns(name)) node = checkin.render(entry);
      else if (registration.owns(name)) node = registration.render(entry);
      else if (registrationMore.owns(name)) node = registrationMore.render(entry);
      else node = startingScreen(Boolean(params.failed));
  }
  // Registration involves money: its screens show the category as the payment screens do (tender #2).
  showCategory(!hidesCategory(name), payment.owns(name) || registration.owns(name)
    || (registrationMore.owns(name) && name !== "regm-today"));
  clear(ui.screen);
  ui.screen.append(node);
  ui.screen.scrollTop = 0;
  document.body.dataset.screen = name;
  state.screenName = name;
  updateNav(name);
  const title = node.querySelector(".screen-title");
  if (title && !isDialogOpen()) title.focus({ preventScroll: true });
  if (name !== "starting") quietly(api.screen(name));
  armIdleTimer();
  ensurePolling();
}

function current() {
  return state.stack[state.stack.length - 1];
}

function show(name, params = {}, { replace = false } = {}) {
  if (replace) state.stack.pop();
  state.stack.push({ name, params });
  render(current());
}

function back() {
  if (state.stack.length <= 1) return;
  const leaving = current();
  if (payment.leavesOpenOrder(leaving.name)) {
    payment.back();  // cancels the open order, then shows the bills again
    return;
  }
  if (registration.leavesOpenOrder(leaving.name)) {
    registration.back();  // cancels the fee's order and releases the number, then shows the doctors again
    return;
  }
  if (registrationMore.leavesOpenOrder(leaving.name)) {
    registrationMore.back();  // the same for a picked-up appointment or a swap, then shows its list again
    return;
  }
  state.stack.pop();
  if (leaving.name === "phone") quietly(api.sessionEnded());  // abandon the first-visit record
  render(current());
}

/** Back to a screen on the stack (the menu if it is not there). */
function backTo(name) {
  const at = state.stack.map((e) => e.name).lastIndexOf(name);
  if (at < 0) {
    goHome();
    return;
  }
  state.stack = state.stack.slice(0, at + 1);
  render(current());
}

/** 首页: the patient's menu while someone is identified, else the welcome screen. */
function goHome({ fresh = false } = {}) {
  closeInfoDialog();
  payment.abandon();  // an unfinished payment is cancelled, not left waiting
  registration.abandon();  // a number held and not paid for goes back on sale
  registrationMore.abandon();
  const leaving = current();
  if (leaving && leaving.name === "phone" && !state.session) quietly(api.sessionEnded());
  state.pendingTile = null;
  if (fresh) setLargeText(false);
  state.stack = [{ name: state.session ? "menu" : "home", params: {} }];
  render(current());
}

function updateNav(name) {
  const atRoot = ROOT_SCREENS.has(name) || state.stack.length <= 1;
  for (const id of ["nav-back", "nav-home"]) {
    const button = $(id);
    const disabled = id === "nav-back" ? atRoot : ROOT_SCREENS.has(name);
    button.setAttribute("aria-disabled", String(disabled));
    button.classList.toggle("is-disabled", disabled);
  }
}

function startIdentify(tile) {
  state.pendingTile = tile;
  show("identify", { tile });
}

function chooseTile(service) {
  if (!service.available) {
    openInfo({
      title: T.comingSoonTitle(service.name),
      body: T.comingSoonBody,
      next: T.comingSoonNext,
      iconName: "info",
      testid: "coming-soon-dialog",
    });
    return;
  }
  if (service.needs_patient && !state.session) {
    startIdentify(service);
    return;
  }
  if (service.key === "payment") {
    show("pay-bills");
    return;
  }
  const screens = { register: "reg-departments", appointment_pickup: "regm-pickup", reg_reprint: "regm-today",
    reg_swap: "regm-swap", reg_cancel: "regm-cancel", check_in: "checkin", exam_booking: "exam-orders", reprint: "doc-list", reports: "report-list" };
  if (screens[service.key]) {
    show(screens[service.key]);
    return;
  }
  // No service screen is wired into this page yet: say so kindly rather than fail.
  openInfo({ title: T.comingSoonTitle(service.name), body: T.comingSoonBody, next: T.comingSoonNext,
    iconName: "info", testid: "coming-soon-dialog" });
}

// ---- identification ---------------------------------------------------------------------------

/** Long-poll the agent whenever nobody is identified, so a card inserted at any time goes in. */
async function ensurePolling() {
  if (state.polling || state.session || !state.config) return;
  state.polling = true;
  let failures = 0;
  while (!state.session && !state.ending) {
    state.pollAbort = new AbortController();
    let outcome;
    try {
      outcome = await api.waitForIdentity(state.config.long_poll_seconds || 25, state.pollAbort.signal);
      failures = 0;
    } catch (err) {
      if (err.name === "AbortError") break;
      failures += 1;
      await pause(Math.min(1000 * failures, 5000));
      continue;
    }
    if (state.session || state.ending) break;
    handleOutcome(outcome);
  }
  state.pollAbort = null;
  state.polling = false;
}

function stopPolling() {
  if (state.pollAbort) state.pollAbort.abort();
}

/** @returns {string|null} a problem to show in place (phone screen), or null when handled. */
function handleOutcome(outcome) {
  if (!outcome || outcome.outcome === "waiting") return null;
  switch (outcome.outcome) {
    case "identified":
      startSession(outcome.session);
      return null;
    case "refused":
      closeInfoDialog();
      state.stack = [{ name: "home", params: {} }];
      show("refused", { message: outcome.message, nextStep: outcome.next_step });
      return null;
    case "needs_phone":
      closeInfoDialog();
      state.stack = [{ name: "home", params: {} }];
      show("phone", { maskedName: outcome.masked_name, message: outcome.message });
      return null;
    default: {
      const text = [outcome.message, outcome.next_step].filter(Boolean).join(" ") || T.networkError;
      if (!showInlineError(ui.screen, text)) openInfo({ title: T.errorTitle, body: outcome.message,
        next: outcome.next_step });
      return text;
    }
  }
}

async function submitPhone(phone) {
  try {
    const outcome = await api.submitPhone(phone);
    if (outcome && outcome.outcome === "error") return [outcome.message, outcome.next_step].filter(Boolean).join(" ");
    return handleOutcome(outcome);
  } catch (err) {
    return err instanceof ApiError ? [err.message, err.nextStep].filter(Boolean).join(" ") : T.networkError;
  }
}

// ---- the patient's session ----------------------------------------------------------------------

function startSession(session) {
  if (!session) return;
  if (state.session && state.session.session_id === session.session_id) return;
  state.session = session;
  stopPolling();
  payment.forget();
  exams.forget();
  documents.forget();
  registration.forget();
  registrationMore.forget();
  closeInfoDialog();
  renderPatientBar(session);
  clock.start(session);
  const tile = state.pendingTile;
  state.pendingTile = null;
  state.stack = [{ name: "menu", params: {} }];
  render(current());
  say(T.sayIdentified(session.patient ? session.patient.masked_name : ""));
  if (tile) chooseTile(tile);
}

function renderPatientBar(session) {
  const p = session.patient || {};
  const facts = [];
  facts.push(h("span", { class: "chip chip-category", dataset: { testid: "patient-category", category: session.category } },
    session.category_label));
  facts.push(h("span", { class: "chip chip-medium", dataset: { testid: "patient-medium" } }, session.medium_label));
  if (p.insurance && p.insurance.balance != null) {
    facts.push(h("span", { class: "fact", dataset: { testid: "patient-balance" } },
      `${T.balanceLabel} `, h("strong", {}, formatYuan(p.insurance.balance))));
  }
  if (p.admission) {
    facts.push(h("span", { class: "fact", dataset: { testid: "patient-admission" } }, T.admissionLabel(p.admission)));
  }
  const who = h("div", { class: "who" },
    h("span", { class: "visually-hidden" }, T.patientBarLabel),
    h("span", { class: "patient-name", dataset: { testid: "patient-name" } }, p.masked_name || ""),
    T.ageGender(p) ? h("span", { class: "age-gender" }, T.ageGender(p)) : null);
  $("patient-info").replaceChildren(who, h("div", { class: "facts" }, facts));
  showCountdown(clock.secondsLeft || session.seconds_left || session.idle_seconds);
  ui.patientBar.hidden = false;

  const notices = session.notices || [];
  if (notices.length) {
    ui.notices.replaceChildren(
      icon("bell", "icon"),
      h("div", {},
        h("p", { class: "notices-title" }, T.noticesLabel),
        h("ul", {}, notices.map((n) => h("li", {}, n)))));
    ui.notices.hidden = false;
  }
}

/** The patient bar's insurance category chip, shown or (on exam and paper screens) emptied and hidden. */
function showCategory(visible, paying) {
  // The personal-account balance is money too: out of the bar wherever the category is.
  const balance = document.querySelector("[data-testid='patient-balance']");
  if (balance) balance.hidden = !visible;
  const chip = document.querySelector("[data-testid='patient-category']");
  if (!chip || !state.session) return;
  const label = state.session.category_label || "";
  const shown = visible && (paying || !label.includes(CROSS_REGION));
  chip.hidden = !shown;
  chip.textContent = shown ? label : "";
}

function showCountdown(left) {
  const el = $("session-countdown");
  el.textContent = T.countdown(left);
  el.classList.toggle("low", state.session && left <= (state.session.warn_seconds || 0));
  const warnCount = $("warn-count");
  if (warnCount) warnCount.textContent = T.warnBody(left);
}

function openWarning(left) {
  closeInfoDialog();
  const dialog = $("warn-dialog");
  $("warn-count").textContent = T.warnBody(left);
  if (!dialog.open) dialog.showModal();
  $("warn-more").focus();
  say(T.sayWarn);
}

async function moreTime() {
  const dialog = $("warn-dialog");
  if (dialog.open) dialog.close();
  await clock.moreTime();
}

/**
 * End the patient's session and clear every trace of it: tell the service and the agent, drop
 * all patient DOM and JS state, close the demo drawer, and go back to the welcome screen.
 */
async function endSession(reason) {
  if (state.ending) return;
  state.ending = true;
  clock.stop();
  hush();
  const hadSession = Boolean(state.session);
  clearPatient();
  render({ name: "starting" });
  if (hadSession && reason !== "gone") {
    // A payment still open is cancelled while the session can still ask for it.
    await Promise.race([Promise.all([payment.abandon(), registration.abandon(), registrationMore.abandon()]),
      pause(ABANDON_WAIT_MS)]);
  }
  payment.forget();
  exams.forget();
  documents.forget();
  registration.forget();
  registrationMore.forget();
  if (hadSession && reason !== "gone") {
    await api.logout(reason === "idle" ? "idle" : undefined).catch(() => {});
  }
  await api.sessionEnded().catch(() => {});
  state.ending = false;
  try {
    state.config = await api.config();
    applyConfig(state.config);
  } catch {
    // Keep the configuration we had.
  }
  goHome({ fresh: true });
  if (reloadIfNewPage(state.config)) return;
  announce(T.loggedOut);
}

function clearPatient() {
  state.session = null;
  state.pendingTile = null;
  state.stack = [];
  for (const id of ["warn-dialog", "info-dialog"]) {
    const dialog = $(id);
    if (dialog.open) dialog.close();
  }
  clear($("info-body"));
  clear($("patient-info"));
  $("session-countdown").textContent = "";
  $("warn-count").textContent = "";
  ui.patientBar.hidden = true;
  clear(ui.notices);
  ui.notices.hidden = true;
  clear(ui.screen);
  clear(ui.announcer);
  if (demoPanel) demoPanel.close();
  setLargeText(false);
  // The page never writes these; clearing them anyway means nothing can linger by mistake.
  try { localStorage.clear(); } catch { /* storage disabled */ }
  try { sessionStorage.clear(); } catch { /* storage disabled */ }
  history.replaceState(null, "", location.pathname);
}

// ---- the no-patient idle timer -----------------------------------------------------------------

/** Without a patient, any screen but a plain home goes home after idle_seconds untouched. */
function armIdleTimer() {
  clearTimeout(state.idleTimer);
  state.idleTimer = null;
  if (state.session || !state.config) return;
  const name = state.screenName;
  const largeText = document.documentElement.classList.contains("large-text");
  if (name === "home" && !largeText && !isDialogOpen()) return;
  if (!name || name === "starting") return;
  const seconds = Number(state.config.idle_seconds) || 120;
  state.idleTimer = setTimeout(() => {
    if (!state.session) goHome({ fresh: true });
  }, seconds * 1000);
}

// ---- large text, staff call, dialogs ---------------------------------------------------------------

function setLargeText(on) {
  document.documentElement.classList.toggle("large-text", on);
  $("nav-large-text").setAttribute("aria-pressed", String(on));
}

async function callStaff() {
  const screen = (current() && current().name) || "";
  openInfo({ title: T.staffCallTitle, body: T.staffCallSending, iconName: "staff", testid: "staff-call-dialog" });
  try {
    const body = await api.staffCall("patient_request", screen);
    setInfoBody((body && body.message) || T.sayStaffCall);
    say((body && body.message) || T.sayStaffCall);
  } catch (err) {
    $("info-title").textContent = T.errorTitle;
    setInfoBody(err.message, err.nextStep);
  }
}

let focusBeforeDialog = null;

function openInfo({ title, body, next, iconName = "info", testid = "info-dialog" }) {
  const dialog = $("info-dialog");
  dialog.dataset.testid = testid;
  $("info-icon").replaceChildren(icon(iconName, "dialog-icon"));
  $("info-title").textContent = title;
  setInfoBody(body, next);
  if (!dialog.open) {
    focusBeforeDialog = document.activeElement;
    dialog.showModal();
  }
  $("info-ok").focus();
}

function setInfoBody(body, next) {
  replaceChildren($("info-body"),
    h("p", { class: "dialog-text", dataset: { testid: "dialog-message" } }, body || ""),
    next ? h("p", { class: "dialog-next" }, next) : null);
}

function closeInfoDialog() {
  const dialog = $("info-dialog");
  if (dialog.open) dialog.close();
}

function restoreFocus() {
  const target = focusBeforeDialog;
  focusBeforeDialog = null;
  clear($("info-body"));
  if (target && target.isConnected && typeof target.focus === "function") target.focus();
  else ui.screen.querySelector(".screen-title")?.focus();
  armIdleTimer();
}

function isDialogOpen() {
  return $("info-dialog").open || $("warn-dialog").open;
}

function announce(text) {
  ui.announcer.textContent = text;
}

function pause(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

boot();
