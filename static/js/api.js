// The one way our pages call the REST API: JSON in and out, the session's CSRF token in a
// header, and every failure as an ApiError carrying the status and the server's JSON body.

export class ApiError extends Error {
  constructor(status, body) {
    super(describe(status, body));
    this.status = status;
    this.body = body || {};
    // Errors about parts of a document: [{node, field, message}] (docs/api.md, Errors).
    this.errors = Array.isArray(this.body.errors) ? this.body.errors : [];
  }
}

function describe(status, body) {
  if (body && typeof body.detail === "string") return body.detail;
  if (status === 0) return "The server could not be reached.";
  if (body && typeof body === "object") {
    // DRF field errors: {"name": ["This field is required."]}
    const parts = Object.entries(body)
      .filter(([, v]) => Array.isArray(v) && v.every((x) => typeof x === "string"))
      .map(([k, v]) => `${k}: ${v.join(" ")}`);
    if (parts.length) return parts.join("; ");
  }
  return `The server answered ${status}.`;
}

function csrfToken() {
  const cookie = document.cookie.split("; ").find((c) => c.startsWith("csrftoken="));
  if (cookie) return decodeURIComponent(cookie.slice("csrftoken=".length));
  const input = document.querySelector("input[name=csrfmiddlewaretoken]");
  return input ? input.value : "";
}

/** Call the API; resolves with the parsed JSON (null for 204), rejects with ApiError. */
export async function api(method, url, body) {
  const headers = { Accept: "application/json" };
  const init = { method, headers, credentials: "same-origin" };
  if (method !== "GET" && method !== "HEAD") headers["X-CSRFToken"] = csrfToken();
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch (exc) {
    throw new ApiError(0, { detail: `The server could not be reached (${exc.message}).` });
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { detail: `The server answered ${response.status} with a page, not JSON.` };
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

export const get = (url) => api("GET", url);
export const post = (url, body) => api("POST", url, body === undefined ? {} : body);
export const patch = (url, body) => api("PATCH", url, body);
