// Small DOM helpers: elements are built with createElement (never innerHTML), so no markup from
// data can sneak in and nothing needs an inline style or handler (the agent's CSP forbids both).

const SVG_NS = "http://www.w3.org/2000/svg";
export const ICONS = "/static/kiosk/icons.svg";

/**
 * h("button", {class: "btn", onclick: fn, dataset: {testid: "x"}}, "text", child, …)
 * Attributes starting with "on" become listeners; `dataset` fills data-*; false/null are skipped.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "dataset") {
      for (const [k, v] of Object.entries(value)) el.dataset[k] = v;
    } else if (key === "class") {
      el.className = Array.isArray(value) ? value.filter(Boolean).join(" ") : value;
    } else if (value === true) {
      el.setAttribute(key, "");
    } else {
      el.setAttribute(key, String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** A pictogram from the sprite (icons.svg), decorative: the text next to it carries the meaning. */
export function icon(name, cls = "icon") {
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("class", cls);
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  const use = document.createElementNS(SVG_NS, "use");
  use.setAttribute("href", `${ICONS}#${name}`);
  svg.append(use);
  return svg;
}

/** Remove every child (and with them any patient text they held). */
export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
}

export function replaceChildren(el, ...children) {
  clear(el);
  append(el, children);
}
