// The page's only way out: JSON calls to the local device agent (same origin).

import { T } from "./messages.js";

/**
 * An error the patient can read: the agent's or the service's {message, next_step}, or a network
 * failure. `data` is the whole error body (e.g. offer_self_pay, session_ended).
 */
export class ApiError extends Error {
  constructor(message, nextStep, status = 0, data = null) {
    super(message);
    this.nextStep = nextStep;
    this.status = status;
    this.data = data || {};
  }

  /** The service no longer has this patient's session (401 session_ended): go home. */
  get sessionEnded() {
    return this.status === 401 && Boolean(this.data.session_ended);
  }

  /** The call may have happened (504 from the agent): ask for the state instead of repeating it. */
  get outcomeUnknown() {
    return this.status === 504;
  }
}

async function call(method, path, body, { signal } = {}) {
  let response;
  try {
    response = await fetch(path, {
      method,
      signal,
      cache: "no-store",
      credentials: "same-origin",
      headers: body === undefined ? { Accept: "application/json" }
        : { Accept: "application/json", "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(T.networkError, T.networkNext);
  }
  return reply(response);
}

async function reply(response) {
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    const message = (data && typeof data.message === "string" && data.message) || T.networkError;
    const nextStep = (data && typeof data.next_step === "string" && data.next_step) || T.genericNext;
    throw new ApiError(message, nextStep, response.status, data && typeof data === "object" ? data : null);
  }
  return data;
}

/** A call whose body is not JSON (a PDF to print); the reply is JSON as always. */
async function callRaw(method, path, headers, body) {
  let response;
  try {
    response = await fetch(path, {
      method, cache: "no-store", credentials: "same-origin", headers: { Accept: "application/json", ...headers }, body,
    });
  } catch {
    throw new ApiError(T.networkError, T.networkNext);
  }
  return reply(response);
}

/** A PDF from the service, as bytes; an error reply becomes an ApiError as any other. */
async function fetchPdf(path) {
  let response;
  try {
    response = await fetch(path, { cache: "no-store", credentials: "same-origin", headers: { Accept: "application/pdf" } });
    if (response.ok) return await response.arrayBuffer();
  } catch {
    throw new ApiError(T.networkError, T.networkNext);
  }
  return reply(response);
}

const PAYMENTS = "/local/api/kiosk/payments";
const CHECKIN = "/local/api/kiosk/checkin";
const EXAMS = "/local/api/kiosk/exams/orders";
const DOCUMENTS = "/local/api/kiosk/documents";
const REGISTRATIONS = "/local/api/kiosk/registrations";
const enc = encodeURIComponent;

export const api = {
  config: () => call("GET", "/local/config"),
  /** The next identification outcome; with `orderNo`, a payment code at the scanner pays that order. */
  waitForIdentity: (timeout, signal, { orderNo } = {}) =>
    call("GET", `/local/identify/wait?timeout=${enc(timeout)}${orderNo ? `&expect=payment_code&order_no=${enc(orderNo)}` : ""}`,
      undefined, { signal }),
  submitPhone: (phone) => call("POST", "/local/identify/phone", { phone }),
  session: () => call("GET", "/local/api/kiosk/session"),
  extend: () => call("POST", "/local/api/kiosk/session/extend", {}),
  logout: (reason) => call("POST", `/local/api/kiosk/session/logout${reason ? `?reason=${reason}` : ""}`, {}),
  sessionEnded: () => call("POST", "/local/session/ended", {}),
  screen: (name) => call("POST", "/local/screen", { name }),
  staffCall: (reason, screen) => call("POST", "/local/api/kiosk/staff-call", { reason, screen }),
  pay: {
    bills: () => call("GET", `${PAYMENTS}/bills`),
    start: ({ visitNo, mode, orderNos }) =>
      call("POST", PAYMENTS, orderNos ? { visit_no: visitNo, mode, order_nos: orderNos } : { visit_no: visitNo, mode }),
    pay: (orderNo, method, authCode) =>
      call("POST", `${PAYMENTS}/${enc(orderNo)}/pay`, authCode ? { method, auth_code: authCode } : { method }),
    status: (orderNo) => call("GET", `${PAYMENTS}/${enc(orderNo)}`),
    cancel: (orderNo) => call("POST", `${PAYMENTS}/${enc(orderNo)}/cancel`, {}),
    receipt: (orderNo) => call("GET", `${PAYMENTS}/${enc(orderNo)}/receipt`),
    history: () => call("GET", `${PAYMENTS}/history`),
    /** The e-invoice PDF (signed by the agent's forwarder); `reprint` is counted by the service. */
    invoicePdf: (orderNo, { reprint = false } = {}) =>
      fetchPdf(`${PAYMENTS}/${enc(orderNo)}/invoice.pdf${reprint ? "?reprint=true" : ""}`),
  },
  checkin: {
    today: () => call("GET", CHECKIN),
    /** `{registration_no}` or `{exam_order_no}`: one of today's registrations or exam appointments. */
    checkIn: (what) => call("POST", CHECKIN, what),
  },
  exams: {
    orders: () => call("GET", EXAMS),
    slots: (orderNo) => call("GET", `${EXAMS}/${enc(orderNo)}/slots`),
    book: (orderNo, w) => call("POST", `${EXAMS}/${enc(orderNo)}/booking`, { date: w.date, start: w.start }),
    move: (orderNo, w) => call("POST", `${EXAMS}/${enc(orderNo)}/booking/move`, { date: w.date, start: w.start }),
    cancel: (orderNo) => call("POST", `${EXAMS}/${enc(orderNo)}/booking/cancel`, {}),
    slip: (orderNo, reprint) => call("GET", `${EXAMS}/${enc(orderNo)}/slip${reprint ? "?reprint=true" : ""}`),
  },
  registration: {
    /** The hospital-configured departments (a preview kiosk sees the draft). */
    departments: () => call("GET", "/local/api/kiosk/registration/departments"),
    dates: () => call("GET", `${REGISTRATIONS}/dates`),
    /** A kiosk department's doctors on a day: its HIS codes and, for a split one, its doctors. */
    schedules: (date, department) => call("GET", `${REGISTRATIONS}/schedules?date=${enc(date)}${
      (department.his_codes || []).map((c) => `&department_code=${enc(c)}`).join("")}${
      (department.doctor_codes || []).map((c) => `&doctor_code=${enc(c)}`).join("")}`),
    /** Hold the number and start paying its fee: `{registration, payment}`. */
    hold: (scheduleId, date) => call("POST", REGISTRATIONS, { schedule_id: scheduleId, date }),
    status: (registrationNo) => call("GET", `${REGISTRATIONS}/${enc(registrationNo)}`),
    release: (registrationNo) => call("POST", `${REGISTRATIONS}/${enc(registrationNo)}/release`, {}),
    slip: (registrationNo) => call("GET", `${REGISTRATIONS}/${enc(registrationNo)}/slip`),
    /** Appointments made in the app or by phone, each with its pick-up window (预约取号). */
    appointments: () => call("GET", `${REGISTRATIONS}/appointments`),
    /** `{registration, payment}`: payment null when it was paid in the app. */
    pickUp: (registrationNo) => call("POST", `${REGISTRATIONS}/appointments/${enc(registrationNo)}/pick-up`, {}),
    today: () => call("GET", `${REGISTRATIONS}/today`),
    /** Today's slip again, marked 补打 and counted: a receipt for the printer. */
    reprint: (registrationNo) => call("POST", `${REGISTRATIONS}/today/${enc(registrationNo)}/reprint`, {}),
    swappable: () => call("GET", `${REGISTRATIONS}/swappable`),
    /** 换号: `{registration, payment}`, the same number paid with insurance. */
    swapToInsurance: (registrationNo) => call("POST", `${REGISTRATIONS}/swappable/${enc(registrationNo)}/swap`, {}),
    /** The numbers taken at a kiosk for today and later, each with `can_cancel` (退号). */
    mine: () => call("GET", `${REGISTRATIONS}/mine`),
    /** 退号: `{registration: {state}, payment}`, the fee given back by its own path. */
    cancel: (registrationNo) => call("POST", `${REGISTRATIONS}/${enc(registrationNo)}/cancel`, {}),
  },
  documents: {
    list: () => call("GET", DOCUMENTS),
    reports: () => call("GET", `${DOCUMENTS}/reports`),
    /** Reserve a print (limit, copy or original): `{print_id, pdf, title, job_id, copy, print_no, prints_left}`. */
    reserve: (kind, docNo) => call("POST", `${DOCUMENTS}/${enc(kind)}/${enc(docNo)}/print`, {}),
    /** The reserved print's PDF; `pdfPath` is the service's own path (`documents/prints/<id>.pdf`). */
    pdf: (pdfPath) => fetchPdf(`/local/api/kiosk/${pdfPath}`),
    result: (printId, printed, detail) => call("POST", `${DOCUMENTS}/prints/${enc(printId)}/result`, { printed, detail }),
  },
  /** The kiosk's bank POS charges the card for an order the service set to be paid by card. */
  posSale: (orderNo) => call("POST", `/local/pos/sale/${enc(orderNo)}`, {}),
  printReceipt: (receipt) => call("POST", "/local/print/receipt", receipt),
  /** A PDF to the kiosk's A4 printer; `jobId` makes a retried request print once. */
  printA4: (pdf, title, jobId) => callRaw("POST", `/local/print/a4?title=${enc(title)}&job_id=${enc(jobId)}`,
    { "Content-Type": "application/pdf" }, pdf),
  /** The agent draws QR codes (SVG); the page only shows the image. */
  qrImageUrl: (data) => `/local/qr?data=${enc(data)}`,
  demo: {
    personas: () => call("GET", "/local/demo/personas"),
    present: (medium, persona) => call("POST", `/local/demo/${DEMO_ENDPOINTS[medium]}`, { persona }),
    peripheral: (name, state, paper) => call("POST", "/local/demo/peripheral", { name, state, paper }),
    printed: () => call("GET", "/local/demo/printed"),
    scanCode: (code) => call("POST", "/local/demo/scan", { code }),
  },
};

const DEMO_ENDPOINTS = {
  insurance_card: "insurance-card",
  id_card: "id-card",
  e_certificate: "scan",
  visit_card: "visit-card",
};

/** Fire-and-forget calls (screen reports): never disturb the patient if they fail. */
export function quietly(promise) {
  promise.catch(() => {});
}
