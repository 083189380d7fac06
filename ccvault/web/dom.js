/**
 * Building the page without HTML strings: whatever a name, reason or audit record holds stays
 * text (nothing to inject), and nothing is inline for the Content-Security-Policy to refuse.
 */

/** An element: `on*` keys add listeners, `dataset` fills data-*, `true` sets an empty
 * attribute, null/undefined/false leave it out; children may be nested arrays or null. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  el.append(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

/** A plain button (never a form's submit). */
export function button(label, onclick, attrs = {}) {
  return h('button', { type: 'button', onclick, ...attrs }, label);
}

/** Place an absolutely positioned piece at [from, to) of a [start, end) axis, in percent
 * (CSSOM, which the policy allows, unlike a style attribute). */
export function place(el, from, to, start, end) {
  const span = end - start;
  el.style.left = `${((from - start) / span) * 100}%`;
  el.style.width = `${(Math.max(0, to - from) / span) * 100}%`;
  return el;
}
