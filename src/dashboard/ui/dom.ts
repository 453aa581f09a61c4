/**
 * Building the page: elements from data, text always as text. Nothing here (or anywhere in the
 * dashboard's page) parses a string as HTML, so a step named `<img src=x onerror=…>` or an
 * output holding markup shows as the characters it is.
 */

export type Child = Node | string | number | null | undefined | false | Child[];

export interface Props {
  class?: string;
  /** Attributes (set with setAttribute, never an `on…` handler). */
  attrs?: Record<string, string | number | boolean | undefined>;
  /** Inline style properties (CSS custom properties too). */
  style?: Record<string, string>;
  /** Event listeners. */
  on?: { [K in keyof HTMLElementEventMap]?: (event: HTMLElementEventMap[K]) => void };
}

/** An element with props and children (strings become text nodes). */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props?: Props | null,
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (props?.class) el.className = props.class;
  for (const [name, value] of Object.entries(props?.attrs ?? {})) {
    if (/^on/i.test(name)) throw new Error(`h(): refusing the handler attribute ${name}`);
    if (value === undefined || value === false) continue;
    el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const [name, value] of Object.entries(props?.style ?? {})) el.style.setProperty(name, value);
  for (const [type, listener] of Object.entries(props?.on ?? {})) {
    el.addEventListener(type, listener as EventListener);
  }
  append(el, children);
  return el;
}

/** Appends children to `parent` (text as text nodes). */
export function append(parent: Node, children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(parent, child);
    else if (child instanceof Node) parent.appendChild(child);
    else parent.appendChild(document.createTextNode(String(child)));
  }
}

/** Replaces the children of `parent`. */
export function replace(parent: Node, ...children: Child[]): void {
  while (parent.firstChild) parent.removeChild(parent.firstChild);
  append(parent, children);
}

/** A value as indented JSON text in a `<pre>`. */
export function json(value: unknown, className = "json"): HTMLPreElement {
  return h("pre", { class: className }, JSON.stringify(value, null, 2) ?? "undefined");
}

const pad = (n: number, width = 2) => String(n).padStart(width, "0");

/** A time as `2026-12-04 17:05:09.123` (local). */
export function time(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return "—";
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** A duration as `350 ms`, `1.25 s`, `3 min 20 s`, `2 h 5 min`, `3 d 4 h`. */
export function duration(ms: number): string {
  if (!Number.isFinite(ms)) return "—";
  const abs = Math.abs(ms);
  if (abs < 1000) return `${Math.round(ms)} ms`;
  if (abs < 60_000) return `${(ms / 1000).toFixed(abs < 10_000 ? 2 : 1)} s`;
  const s = Math.round(abs / 1000);
  const sign = ms < 0 ? "-" : "";
  if (s < 3600) return `${sign}${Math.floor(s / 60)} min ${s % 60} s`;
  if (s < 86_400) return `${sign}${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${sign}${Math.floor(s / 86_400)} d ${Math.floor((s % 86_400) / 3600)} h`;
}

/** A status badge. */
export function badge(status: string): HTMLSpanElement {
  return h("span", { class: `badge status-${status.replace(/[^a-z_]/g, "")}` }, status);
}

/** A table with a header row, in its scrolling wrapper; `rows`, or a body to fill later. */
export function table(
  headers: string[],
  rows: HTMLTableRowElement[] | HTMLTableSectionElement,
): HTMLElement {
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      null,
      h(
        "thead",
        null,
        h(
          "tr",
          null,
          headers.map((t) => h("th", null, t)),
        ),
      ),
      Array.isArray(rows) ? h("tbody", null, rows) : rows,
    ),
  );
}
