// The page's only way out: JSON calls to the local device agent (same origin).

import { T } from "./messages.js";

/** An error the patient can read: the agent's {message, next_step}, or a network failure. */
export class ApiError extends Error {
  constructor(message, nextStep, status = 0) {
    super(message);
    this.nextStep = nextStep;
    this.status = status;
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
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    const message = (data && typeof data.message === "string" && data.message) || T.networkError;
    const nextStep = (data && typeof data.next_step === "string" && data.next_step) || T.genericNext;
    throw new ApiError(message, nextStep, response.status);
  }
  return data;
}

export const api = {
  config: () => call("GET", "/local/config"),
  waitForIdentity: (timeout, signal) =>
    call("GET", `/local/identify/wait?timeout=${encodeURIComponent(timeout)}`, undefined, { signal }),
  submitPhone: (phone) => call("POST", "/local/identify/phone", { phone }),
  session: () => call("GET", "/local/api/kiosk/session"),
  extend: () => call("POST", "/local/api/kiosk/session/extend", {}),
  logout: (reason) => call("POST", `/local/api/kiosk/session/logout${reason ? `?reason=${reason}` : ""}`, {}),
  sessionEnded: () => call("POST", "/local/session/ended", {}),
  screen: (name) => call("POST", "/local/screen", { name }),
  staffCall: (reason, screen) => call("POST", "/local/api/kiosk/staff-call", { reason, screen }),
  demo: {
    personas: () => call("GET", "/local/demo/personas"),
    present: (medium, persona) => call("POST", `/local/demo/${DEMO_ENDPOINTS[medium]}`, { persona }),
    peripheral: (name, state, paper) => call("POST", "/local/demo/peripheral", { name, state, paper }),
    printed: () => call("GET", "/local/demo/printed"),
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
