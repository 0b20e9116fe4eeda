// A4 paper from the HIS: reprints of exam requisitions and prescription copies (补打单据, tender #7)
// and lab and exam reports (报告打印). Each print: the service reserves it (limit, copy or
// original), the page fetches its PDF through the agent's forwarder, the agent prints it on the
// A4 printer, and the page tells the service whether it came out (a failed print is not counted).

import { api, ApiError, quietly } from "./api.js";
import { h, icon, replaceChildren } from "./dom.js";
import { DOCS, T } from "./messages.js";

const SCREENS = new Set(["doc-list", "report-list"]);

/** Reserve, fetch the PDF, print it on A4, report the outcome (a failed print is not counted). */
async function printDocument(kind, docNo) {
  const job = await api.documents.reserve(kind, docNo);
  let printed = false;
  let detail = "";
  try {
    const pdf = await api.documents.pdf(job.pdf);
    try {
      await api.printA4(pdf, job.title, job.job_id);
    } catch (err) {
      // The agent's words (A4打印机缺纸 …) when it gave them; else a plain "did not print".
      const said = err.status && err.data && typeof err.data.message === "string" && err.data.message;
      detail = said || `a4 ${err.status || "unreachable"}`;
      throw err.status ? new ApiError(said || DOCS.printFailed, err.nextStep, err.status, err.data) : err;
    }
    printed = true;
    return job;
  } catch (err) {
    detail = detail || (err && err.message) || "error";
    throw err instanceof ApiError ? err : new ApiError(T.networkError, T.networkNext);
  } finally {
    quietly(api.documents.result(job.print_id, printed, detail));
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
    const load = what === "report" ? api.documents.reports() : api.documents.list();
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
