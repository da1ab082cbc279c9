// JSON calls to the Quietcast API with the session cookie and CSRF header; errors become ApiError.

export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.name = "ApiError";
    this.status = status;
  }
}

export function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  if (match) return decodeURIComponent(match[1]);
  // The cookie may be missing on a first visit; every page's forms carry the token too.
  return document.querySelector("input[name=csrfmiddlewaretoken]")?.value ?? "";
}

export async function api(url, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRFToken"] = csrfToken();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError("Quietcast could not be reached. Check your connection and try again.", 0);
  }
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    throw new ApiError(data?.error ?? `The server answered ${response.status}.`, response.status);
  }
  return data;
}

// The body of a beacon for page unload (a fetch may be cancelled as the page goes away, a beacon is delivered
// anyway). Beacons cannot set headers, so the CSRF token travels as a form field.
//
// Build it before the page goes away, and let the pagehide handler make the one call
// `navigator.sendBeacon(url, form)` before anything else. When a closing tab is the last page in its process,
// Firefox shuts the process down and aborts the page's scripts wherever they next call into JavaScript
// (logged as "Script terminated by timeout", though nothing ran long): a beacon whose body the handler was
// still computing (even just reading the CSRF cookie with a regular expression) was lost in about one close
// out of three. A handler whose first act is the native sendBeacon call got every beacon out.
export function beaconForm(fields = {}) {
  return new URLSearchParams({ ...fields, csrfmiddlewaretoken: csrfToken() });
}
