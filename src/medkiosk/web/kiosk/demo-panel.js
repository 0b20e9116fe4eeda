// The demo panel: a drawer on the right edge that plays the kiosk's readers and printers.
//
// Only created when the agent says demo is on. It is deliberately styled unlike the patient UI
// (striped handle, dark panel, "演示工具" label). Its contents (persona names, printouts) exist in
// the DOM only while the drawer is open: closing it, or the end of a session, removes them.

import { api } from "./api.js";
import { clear, h } from "./dom.js";
import { DEMO } from "./messages.js";

const MEDIUM_ALIASES = {
  insurance_card: "insurance_card", "insurance-card": "insurance_card", card: "insurance_card",
  id_card: "id_card", "id-card": "id_card",
  e_certificate: "e_certificate", "e-certificate": "e_certificate", scan: "e_certificate", qr: "e_certificate",
  ec: "e_certificate",
  visit_card: "visit_card", "visit-card": "visit_card",
};
const MEDIUM_ORDER = ["insurance_card", "id_card", "e_certificate", "visit_card"];
const READERS = ["insurance_card_reader", "id_card_reader", "qr_scanner"];
const testid = (s) => s.replace(/_/g, "-");

export class DemoPanel {
  constructor(root) {
    this.root = root;
    this.open = false;
    this.paper = "ok";
    this.readers = Object.fromEntries(READERS.map((r) => [r, "ok"]));
    this.handle = h("button", {
      type: "button", class: "demo-handle", dataset: { testid: "demo-handle" },
      "aria-expanded": "false", "aria-controls": "demo-body", onclick: () => this.toggle(),
    }, DEMO.handle);
    this.body = h("div", { class: "demo-body", id: "demo-body", hidden: true });
    root.append(this.handle, this.body);
    root.hidden = false;
  }

  toggle() {
    if (this.open) this.close();
    else this.show();
  }

  async show() {
    this.open = true;
    this.root.classList.add("open");
    this.handle.setAttribute("aria-expanded", "true");
    this.body.hidden = false;
    this.status = h("p", { class: "demo-status", role: "status", "aria-live": "polite",
      dataset: { testid: "demo-status" } });
    this.personaList = h("div", { class: "demo-personas", dataset: { testid: "demo-personas" } });
    this.printedList = h("div", { class: "demo-printed", dataset: { testid: "demo-printed" } });
    this.peripherals = h("div", { class: "demo-peripherals" });
    // A phone's payment code at the scanner (magic codes of the payment simulator).
    const codes = h("div", { class: "demo-buttons" }, DEMO.paymentCodeButtons.map(([key, label, code]) => h("button", {
      type: "button", class: "demo-btn", dataset: { testid: `demo-payment-code-${key}` },
      onclick: () => this.showPaymentCode(label, code),
    }, label)));
    this.body.append(
      h("div", { class: "demo-head" },
        h("div", {},
          h("p", { class: "demo-title" }, DEMO.title),
          h("p", { class: "demo-subtitle" }, DEMO.subtitle)),
        h("button", { type: "button", class: "demo-btn", dataset: { testid: "demo-close" },
          onclick: () => this.close() }, DEMO.close)),
      this.status,
      h("h3", {}, DEMO.paymentCodes), codes,
      h("h3", {}, DEMO.personas), this.personaList,
      h("h3", {}, DEMO.peripherals), this.peripherals,
      h("div", { class: "demo-row" }, h("h3", {}, DEMO.printed),
        h("button", { type: "button", class: "demo-btn", dataset: { testid: "demo-printed-refresh" },
          onclick: () => this.loadPrinted() }, DEMO.refresh)),
      this.printedList);
    this.renderPeripherals();
    this.printedTimer = setInterval(() => this.loadPrinted(), 5000);
    await Promise.all([this.loadPersonas(), this.loadPrinted()]);
  }

  /** Collapse the drawer and drop everything it showed (persona names, printouts). */
  close() {
    this.open = false;
    clearInterval(this.printedTimer);
    this.root.classList.remove("open");
    this.handle.setAttribute("aria-expanded", "false");
    clear(this.body);
    this.body.hidden = true;
  }

  say(text) {
    if (this.status) this.status.textContent = text;
  }

  async loadPersonas() {
    let personas;
    try {
      personas = await api.demo.personas();
    } catch (err) {
      this.say(`${DEMO.loadFailed}：${err.message}`);
      return;
    }
    if (!this.open) return;
    const list = Array.isArray(personas) ? personas : (personas && personas.personas) || [];
    this.personaList.replaceChildren(...list.map((p) => this.personaCard(p)));
  }

  personaCard(persona) {
    const media = new Set((persona.media || []).map((m) => MEDIUM_ALIASES[m] || m));
    const buttons = MEDIUM_ORDER.filter((m) => media.has(m)).map((m) => h("button", {
      type: "button", class: "demo-btn",
      dataset: { testid: `demo-${testid(m)}-${persona.key}` },
      onclick: () => this.present(m, persona),
    }, DEMO.presentWith[m]));
    return h("div", { class: "demo-persona", dataset: { persona: persona.key } },
      h("p", { class: "demo-persona-name" }, persona.masked_name || persona.key,
        h("span", { class: "demo-persona-key" }, ` ${persona.key}`)),
      persona.notes ? h("p", { class: "demo-persona-notes" }, persona.notes) : null,
      h("div", { class: "demo-buttons" }, buttons));
  }

  async present(medium, persona) {
    const what = `${DEMO.presentWith[medium]} · ${persona.masked_name || persona.key}`;
    try {
      await api.demo.present(medium, persona.key);
      this.say(DEMO.done(what));
    } catch (err) {
      this.say(DEMO.failed(err.message));
    }
  }

  async showPaymentCode(label, code) {
    try {
      await api.demo.scanCode(code);
      this.say(DEMO.done(`${label}（${code.slice(0, 4)}…）`));
    } catch (err) {
      this.say(DEMO.failed(err.message));
    }
  }

  renderPeripherals() {
    const paperButtons = Object.entries(DEMO.paperStates).map(([paper, label]) => h("button", {
      type: "button", class: "demo-btn", "aria-pressed": String(this.paper === paper),
      dataset: { testid: `demo-paper-${paper}` },
      onclick: () => this.setPeripheral({ name: "receipt_printer", paper }, () => { this.paper = paper; },
        `${DEMO.paper}：${label}`),
    }, label));
    const readerRows = READERS.map((name) => h("div", { class: "demo-row" },
      h("span", {}, DEMO.readerNames[name]),
      h("span", { class: "demo-buttons" },
        ["ok", "fault"].map((state) => h("button", {
          type: "button", class: "demo-btn", "aria-pressed": String(this.readers[name] === state),
          dataset: { testid: `demo-${testid(name)}-${state}` },
          onclick: () => this.setPeripheral({ name, state }, () => { this.readers[name] = state; },
            `${DEMO.readerNames[name]}：${state === "ok" ? DEMO.readerOk : DEMO.readerFault}`),
        }, state === "ok" ? DEMO.readerOk : DEMO.readerFault)))));
    this.peripherals.replaceChildren(
      h("div", { class: "demo-row" }, h("span", {}, DEMO.paper), h("span", { class: "demo-buttons" }, paperButtons)),
      ...readerRows);
  }

  async setPeripheral(body, remember, what) {
    try {
      await api.demo.peripheral(body.name, body.state, body.paper);
      remember();
      this.say(DEMO.done(what));
    } catch (err) {
      this.say(DEMO.failed(err.message));
    }
    if (this.open) this.renderPeripherals();
  }

  async loadPrinted() {
    let printed;
    try {
      printed = await api.demo.printed();
    } catch {
      return;
    }
    if (!this.open) return;
    const list = Array.isArray(printed) ? printed : (printed && (printed.printed || printed.items)) || [];
    if (!list.length) {
      this.printedList.replaceChildren(h("p", { class: "demo-empty" }, DEMO.printedNone));
      return;
    }
    // The agent lists them newest first.
    this.printedList.replaceChildren(...list.slice(0, 5).map((item) => h("details",
      { class: "demo-printout" },
      h("summary", {}, `${item.title || item.kind || ""} · ${(item.printed_at || "").replace("T", " ").slice(0, 19)}`),
      item.text ? h("pre", {}, item.text) : h("p", {}, (item.files || []).join("\n")))));
  }
}
