// A4 paper from the HIS: reprints of exam requisitions and prescription copies (补打单据, tender #7)
// and lab and exam reports (报告打印). Each print: the service reserves it (limit, copy or
// original), the page fetches its PDF through the agent's forwarder, the agent prints it on the
// A4 printer, and the page tells the service whether it came out (a failed print is not counted).

import { ApiError } from "./api.js";
import { h, icon, replaceChildren } from "./dom.js";
import { DOCS, T } from "./messages.js";

const SCREENS = new Set(["doc-list", "report-list"]);
const BASE = "/local/api/kiosk/documents";
const enc = encodeURIComponent;

async function call(method, path, body) {
  let response;
  try {
    response = await fetch(path, {
      method, cache: "no-store", credentials: "same-origin",
      headers: body === undefined ? { Accept: "application/json" } : { Accept: "application/json", "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(T.networkError, T.networkNext);
  }
  let data = null;
  try { data = await response.json(); } catch { data = null; }
  if (!response.ok) {
    throw new ApiError((data && data.message) || T.networkError, (data && data.next_step) || T.genericNext,
      response.status, data);
  }
  return data;
}

/** Reserve, fetch the PDF, print it on A4, report the outcome. */
async function printDocument(kind, docNo) {
  const job = await call("POST", `${BASE}/${enc(kind)}/${enc(docNo)}/print`, {});
  let printed = false;
  let detail = "";
  try {
    const pdf = await fetch(`/local/api/kiosk/${job.pdf}`, { cache: "no-store" });
    if (!pdf.ok) {
      let data = null;
      try { data = await pdf.json(); } catch { data = null; }
      throw new ApiError((data && data.message) || T.networkError, (data && data.next_step) || T.genericNext, pdf.status, data);
    }
    const body = await pdf.arrayBuffer();
    const out = await fetch(`/local/print/a4?title=${enc(job.title)}&job_id=${enc(job.job_id)}`, {
      method: "POST", headers: { "Content-Type": "application/pdf", Accept: "application/json" }, body,
    });
    if (!out.ok) {
      let data = null;
      try { data = await out.json(); } catch { data = null; }
      detail = (data && data.message) || `a4 ${out.status}`;
      throw new ApiError((data && data.message) || DOCS.printFailed, (data && data.next_step) || T.genericNext, out.status, data);
    }
    printed = true;
    return job;
  } catch (err) {
    detail = detail || (err && err.message) || "error";
    throw err instanceof ApiError ? err : new ApiError(T.networkError, T.networkNext);
  } finally {
    call("POST", `${BASE}/prints/${enc(job.print_id)}/result`, { printed, detail }).catch(() => {});
  }
}

function heading(text) {
  return h("h1", { class: "screen-title", tabindex: "-1" }, text);
}

function loading(title, text) {
  return h("section", { class: "screen doc-loading", dataset: { screen: "doc-loading" } },
    heading(title),
    h("p", { class: "waiting", role: "status" }, h("span", { class: "spinner", "aria-hidden": "true" }), text));
}

export class DocumentFlow {
  constructor(app) {
    this.app = app;
    this.gen = 0;
  }

  owns(name) { return SCREENS.has(name); }

  stop() { this.gen += 1; }

  forget() { this.stop(); }

  render({ name }) {
    return name === "report-list" ? this.listView("report") : this.listView("document");
  }

  gone(err) {
    if (err instanceof ApiError && err.sessionEnded) {
      this.app.sessionGone();
      return true;
    }
    return false;
  }

  listView(what) {
    const gen = this.gen;
    const title = what === "report" ? DOCS.reportsHeading : DOCS.docsHeading;
    const host = loading(title, what === "report" ? DOCS.loadingReports : DOCS.loadingDocs);
    const load = what === "report" ? call("GET", `${BASE}/reports`) : call("GET", BASE);
    load.then((body) => {
      if (gen !== this.gen || !host.isConnected) return;
      const node = what === "report" ? this.reportsScreen(body.reports || []) : this.docsScreen(body);
      host.replaceWith(node);
      node.querySelector(".screen-title").focus({ preventScroll: true });
    }, (err) => {
      if (gen !== this.gen || this.gone(err) || !host.isConnected) return;
      const node = h("section", { class: "screen doc-list" }, heading(title),
        h("div", { class: "exam-problem", role: "alert", dataset: { testid: "doc-error" } },
          h("p", { class: "exam-problem-message" }, err.message), h("p", { class: "exam-problem-next" }, `${T.nextStepLabel}${err.nextStep}`)));
      host.replaceWith(node);
    });
    return host;
  }

  docsScreen(body) {
    const docs = body.documents || [];
    return h("section", { class: "screen doc-list", dataset: { screen: "doc-list", testid: "doc-list" } },
      heading(DOCS.docsHeading),
      h("p", { class: "lead" }, docs.length ? DOCS.docsLead : DOCS.noDocs),
      body.limit_note ? h("p", { class: "hint" }, body.limit_note) : null,
      h("ul", { class: "exam-list" }, docs.map((d) => {
        const status = h("p", { class: "exam-print-status", role: "status", "aria-live": "polite",
          dataset: { testid: `doc-status-${d.doc_no}` } });
        const button = d.available && d.prints_left > 0
          ? h("button", { type: "button", class: "btn btn-primary", dataset: { testid: `doc-print-${d.doc_no}` },
            onclick: (e) => this.print(d.kind, d.doc_no, e.currentTarget, status) }, DOCS.print)
          : null;
        return h("li", { class: ["exam-card", !d.available && "is-unavailable"], dataset: { testid: `doc-${d.doc_no}` } },
          h("div", { class: "exam-card-text" },
            h("p", { class: "exam-name" }, h("span", { class: "exam-label" }, d.kind_label), d.title),
            h("p", { class: "exam-meta" }, [d.subject, d.department_name, d.issued_on].filter(Boolean).join(" · ")),
            d.available ? h("p", { class: "exam-note" }, d.prints_left > 0 ? DOCS.printsLeft(d.prints_left) : DOCS.limitReached)
              : h("p", { class: "exam-note exam-warn", dataset: { testid: `doc-unavailable-${d.doc_no}` } },
                `${d.unavailable_reason}。${d.where_to_go}`),
            status),
          h("div", { class: "exam-actions" }, button));
      })));
  }

  reportsScreen(reports) {
    return h("section", { class: "screen doc-list", dataset: { screen: "report-list", testid: "report-list" } },
      heading(DOCS.reportsHeading),
      h("p", { class: "lead" }, reports.length ? DOCS.reportsLead : DOCS.noReports),
      h("ul", { class: "exam-list" }, reports.map((r) => {
        const status = h("p", { class: "exam-print-status", role: "status", "aria-live": "polite",
          dataset: { testid: `report-status-${r.report_no}` } });
        const ready = r.status === "ready";
        const button = ready && r.prints_left > 0
          ? h("button", { type: "button", class: "btn btn-primary", dataset: { testid: `report-print-${r.report_no}` },
            onclick: (e) => this.print("report", r.report_no, e.currentTarget, status) }, r.printed ? DOCS.printCopy : DOCS.print)
          : null;
        return h("li", { class: ["exam-card", !ready && "is-unavailable"], dataset: { testid: `report-${r.report_no}`, status: r.status } },
          h("div", { class: "exam-card-text" },
            h("p", { class: "exam-name" }, h("span", { class: "exam-label" }, r.kind_label), r.title),
            h("p", { class: "exam-meta" }, [r.department, ready ? DOCS.readyAt(r.ready_at) : ""].filter(Boolean).join(" · ")),
            ready ? h("p", { class: "exam-note" }, r.printed ? DOCS.printedBefore : DOCS.firstPrint)
              : h("p", { class: "exam-note exam-warn" }, r.expected_at ? DOCS.pendingUntil(r.expected_at) : DOCS.pending),
            status),
          h("div", { class: "exam-actions" }, button));
      })));
  }

  async print(kind, docNo, button, status) {
    if (button.disabled) return;
    button.disabled = true;
    status.textContent = DOCS.printing;
    try {
      const job = await printDocument(kind, docNo);
      status.textContent = job.copy ? DOCS.printedCopy(job.print_no) : DOCS.printedOriginal;
      replaceChildren(button, icon("check", "icon"), DOCS.printAgain);
      button.disabled = job.prints_left <= 0;
    } catch (err) {
      if (this.gone(err)) return;
      status.textContent = [err.message, err.nextStep].filter(Boolean).join(" ");
      button.disabled = false;
    }
  }
}
