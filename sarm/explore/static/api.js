// sarm explore: what every view shares (the token, API calls, element lookup, number format).
export const token = new URLSearchParams(location.search).get("token") || "";
export const withToken = (path) => `${path}${path.includes("?") ? "&" : "?"}token=${encodeURIComponent(token)}`;
export const api = (path) => fetch(withToken(path))
  .then((r) => { if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`); return r.json(); });
export const $ = (id) => document.getElementById(id);

export function fmt(v) { return v === null || v === undefined ? "–" : typeof v === "number" && !Number.isInteger(v) ? v.toFixed(3) : Array.isArray(v) ? v.join(", ") : String(v); }
