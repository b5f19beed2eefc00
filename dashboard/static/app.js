// Vitals live dashboard. Signs in with the OAuth authorization code flow
// and PKCE (S256) as the public client "vitals-dashboard", keeps its tokens
// in this tab's sessionStorage only, and polls /v1/dashboard/stats.
"use strict";

(() => {
  const CLIENT_ID = "vitals-dashboard";
  const SCOPE = "analytics:read";
  const STATS = "/v1/dashboard/stats";
  const POLL_MS = 2000;
  const HIDDEN_POLL_MS = 10000; // a background tab polls less
  const REFRESH_EARLY_MS = 30000; // refresh this long before expiry
  const KEY = "vitals.dashboard.";
  const REDIRECT_URI = location.origin + "/dashboard/";

  const $ = (id) => document.getElementById(id);

  // sessionStorage only: the tokens end with the tab.
  const store = {
    get: (k) => sessionStorage.getItem(KEY + k),
    set: (k, v) => sessionStorage.setItem(KEY + k, v),
    del: (...ks) => ks.forEach((k) => sessionStorage.removeItem(KEY + k)),
  };

  // ---- OAuth: authorization code + PKCE -------------------------------

  function base64url(bytes) {
    let s = "";
    for (const b of bytes) s += String.fromCharCode(b);
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function randomString(n) {
    const a = new Uint8Array(n);
    crypto.getRandomValues(a);
    return base64url(a);
  }

  async function signIn() {
    if (!window.crypto || !crypto.subtle) {
      showSignIn("Signing in needs a secure context: open the dashboard over HTTPS (or on localhost).");
      return;
    }
    const verifier = randomString(32);
    const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
    const state = randomString(16);
    store.set("verifier", verifier);
    store.set("state", state);
    store.del("signedout");
    const q = new URLSearchParams({
      response_type: "code", client_id: CLIENT_ID, redirect_uri: REDIRECT_URI, scope: SCOPE,
      state, code_challenge: base64url(new Uint8Array(digest)), code_challenge_method: "S256",
    });
    setStatus("Signing in…");
    location.assign("/oauth/authorize?" + q.toString());
  }

  async function tokenRequest(form) {
    const resp = await fetch("/oauth/token", {
      method: "POST", cache: "no-store", credentials: "omit",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams(form),
    });
    let body = {};
    try { body = await resp.json(); } catch (_) { /* not JSON: reported below */ }
    if (!resp.ok || !body.access_token) {
      throw new Error(body.error_description || body.error || "the token endpoint answered " + resp.status);
    }
    store.set("access", body.access_token);
    store.set("expires", String(Date.now() + (Number(body.expires_in) || 300) * 1000));
    if (body.refresh_token) store.set("refresh", body.refresh_token);
  }

  async function finishSignIn(params) {
    const state = store.get("state");
    const verifier = store.get("verifier");
    store.del("state", "verifier");
    // The code is used once, here: it must not stay in the address bar
    // nor in the history.
    history.replaceState(null, "", "/dashboard/");
    if (params.get("error")) throw new Error(params.get("error_description") || params.get("error"));
    if (!state || !verifier || params.get("state") !== state) {
      throw new Error("the answer does not match a sign-in started in this tab");
    }
    await tokenRequest({
      grant_type: "authorization_code", code: params.get("code") || "", redirect_uri: REDIRECT_URI,
      client_id: CLIENT_ID, code_verifier: verifier,
    });
  }

  async function refresh() {
    const rt = store.get("refresh");
    if (!rt) return false;
    try {
      await tokenRequest({ grant_type: "refresh_token", refresh_token: rt, client_id: CLIENT_ID });
      return true;
    } catch (_) {
      store.del("access", "expires", "refresh");
      return false;
    }
  }

  async function accessToken() {
    const at = store.get("access");
    if (at && Date.now() < Number(store.get("expires") || 0) - REFRESH_EARLY_MS) return at;
    return (await refresh()) ? store.get("access") : null;
  }

  async function signOut() {
    clearTimeout(timer);
    const rt = store.get("refresh");
    store.del("access", "expires", "refresh");
    store.set("signedout", "1");
    if (rt) {
      try {
        await fetch("/oauth/revoke", {
          method: "POST", credentials: "omit",
          headers: { "Content-Type": "application/x-www-form-urlencoded" },
          body: new URLSearchParams({ token: rt, token_type_hint: "refresh_token", client_id: CLIENT_ID }),
        });
      } catch (_) { /* the tokens are gone from this tab either way */ }
    }
    showSignIn("You are signed out.");
  }

  // ---- polling ----------------------------------------------------------

  let timer = null;
  let updates = 0;
  let freshSignIn = false;

  async function poll() {
    let wait = document.hidden ? HIDDEN_POLL_MS : POLL_MS;
    try {
      let at = await accessToken();
      if (!at) return expired();
      let resp = await getStats(at);
      if (resp.status === 401 && !freshSignIn && (await refresh())) {
        at = store.get("access");
        resp = await getStats(at);
      }
      if (resp.status === 401) {
        store.del("access", "expires");
        if (freshSignIn) {
          showSignIn("The server refused the new sign-in (401). Try again, or ask an administrator.");
          return;
        }
        return expired();
      }
      if (resp.status === 403) {
        showSignIn("This account may not read the dashboard: it needs scope analytics:read.");
        return;
      }
      freshSignIn = false;
      if (resp.status === 429 || resp.status === 503) {
        wait = Math.max(wait, retryAfter(resp) * 1000);
        setStatus("The server asked to slow down; next update in " + Math.round(wait / 1000) + " s", true);
      } else if (!resp.ok) {
        setStatus("Update failed: the server answered " + resp.status, true);
      } else {
        render(await resp.json());
        updates++;
        document.body.dataset.updates = String(updates);
        setStatus("Updated " + new Date().toLocaleTimeString());
      }
    } catch (e) {
      setStatus("Update failed: " + e.message, true);
    }
    timer = setTimeout(poll, wait);
  }

  function getStats(at) {
    return fetch(STATS, { headers: { Authorization: "Bearer " + at }, cache: "no-store", credentials: "omit" });
  }

  function retryAfter(resp) {
    const s = Number(resp.headers.get("Retry-After"));
    return Number.isFinite(s) && s > 0 ? Math.min(s, 300) : 10;
  }

  function expired() {
    setStatus("The session ended; signing in again…");
    signIn();
  }

  // ---- rendering ----------------------------------------------------------

  const nf0 = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
  const nf2 = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });

  const dash = "—";
  const count = (v) => (v == null ? dash : nf0.format(v));
  const rate = (v) => (v == null ? dash : v >= 100 ? nf0.format(v) : nf2.format(v));
  const pct = (v) => (v == null ? dash : (v * 100).toFixed(1) + "%");
  function duration(s) {
    if (s == null) return dash;
    if (s < 1) return (s * 1000).toFixed(s < 0.01 ? 1 : 0) + " ms";
    return s.toFixed(2) + " s";
  }

  function setText(id, text) {
    const el = $(id);
    if (el && el.textContent !== text) el.textContent = text;
  }

  function render(s) {
    const d = s.deliveries || {};
    setText("deliveries-rate", rate(d.per_second));
    setText("deliveries-total", count(d.total));
    setText("deliveries-exhausted", count(d.exhausted));
    setText("success-rate", pct(d.success_rate));
    setText("attempts-rate", rate(d.attempts_per_second));
    setText("window", s.window_seconds ? Math.round(s.window_seconds) + " s" : "since start");

    const rl = s.rate_limit || {};
    setText("ratelimit-rate", rate(rl.rejected_per_second));
    setText("ratelimit-total", count(rl.rejected_total));

    const lags = s.consumer_lag || [];
    setText("lag-total", count(lags.reduce((t, g) => t + g.lag, 0)));
    list("lag-groups", lags.map((g) => g.group + ": " + count(g.lag)));

    const b = s.breakers || {};
    setText("breakers-closed", count(b.closed));
    setText("breakers-half-open", count(b.half_open));
    setText("breakers-open", count(b.open));
    list("breakers-not-closed", (b.not_closed || []).map((e) => e.endpoint + " " + e.state));

    const bands = s.health_bands || {};
    const total = Object.values(bands).reduce((t, n) => t + n, 0);
    setText("customers-total", count(total) + (total === 1 ? " customer" : " customers"));
    setText("band-green", count(bands.green || 0));
    setText("band-yellow", count(bands.yellow || 0));
    setText("band-red", count(bands.red || 0));
    bandBar(bands, total);

    const h = s.history || [];
    spark("spark-deliveries", h.map((p) => p.deliveries_per_second));
    spark("spark-success", h.map((p) => p.success_rate), 1);
    spark("spark-ratelimit", h.map((p) => p.rejected_per_second));
    spark("spark-lag", h.map((p) => p.lag));

    rows("latency-rows", s.latency || [], 3, "No attempts in the window.", (l) => [
      l.endpoint || "all endpoints", [duration(l.p95_seconds), "num"], [count(l.attempts), "num"],
    ]);
    rows("churn-rows", s.churn_alerts || [], 5, "No churn alerts.", (a) => [
      new Date(a.at).toLocaleString(), a.customer_id, [a.risk_level, riskClass(a.risk_level)],
      [count(a.score), "num"], (a.risk_indicators || []).join(", "),
    ]);
  }

  function riskClass(level) {
    return level === "critical" || level === "high" ? "bad" : level === "medium" ? "warn" : "";
  }

  function list(id, items) {
    const ul = $(id);
    ul.replaceChildren(...items.map((t) => {
      const li = document.createElement("li");
      li.textContent = t;
      return li;
    }));
  }

  // rows fills a table body; each cell is text or [text, class].
  function rows(id, items, cols, empty, cells) {
    const tbody = $(id);
    if (items.length === 0) {
      const td = document.createElement("td");
      td.colSpan = cols;
      td.className = "empty";
      td.textContent = empty;
      const tr = document.createElement("tr");
      tr.append(td);
      tbody.replaceChildren(tr);
      return;
    }
    tbody.replaceChildren(...items.map((item) => {
      const tr = document.createElement("tr");
      for (const c of cells(item)) {
        const td = document.createElement("td");
        const [text, cls] = Array.isArray(c) ? c : [c, ""];
        td.textContent = text;
        if (cls) td.className = cls;
        tr.append(td);
      }
      return tr;
    }));
  }

  const SVG = "http://www.w3.org/2000/svg"; // a namespace name, never fetched

  // spark draws values (nulls break the line) scaled to [0, max].
  function spark(id, values, max) {
    const svg = $(id);
    const n = values.length;
    const top = max || Math.max(1e-9, ...values.filter((v) => v != null));
    const lines = [];
    let pts = [];
    values.forEach((v, i) => {
      if (v == null) {
        if (pts.length) lines.push(pts);
        pts = [];
        return;
      }
      const x = n > 1 ? (i * 200) / (n - 1) : 0;
      const y = 38 - (Math.min(v, top) / top) * 36;
      pts.push(x.toFixed(1) + "," + y.toFixed(1));
    });
    if (pts.length) lines.push(pts);
    svg.replaceChildren(...lines.filter((l) => l.length > 1).map((l) => {
      const pl = document.createElementNS(SVG, "polyline");
      pl.setAttribute("points", l.join(" "));
      return pl;
    }));
  }

  function bandBar(bands, total) {
    const svg = $("bands-bar");
    if (!total) {
      svg.replaceChildren();
      return;
    }
    const order = ["green", "yellow", "red", ...Object.keys(bands).filter((k) => !["green", "yellow", "red"].includes(k))];
    let x = 0;
    svg.replaceChildren(...order.filter((k) => bands[k]).map((k) => {
      const w = (bands[k] / total) * 200;
      const r = document.createElementNS(SVG, "rect");
      r.setAttribute("x", x.toFixed(2));
      r.setAttribute("y", "0");
      r.setAttribute("width", w.toFixed(2));
      r.setAttribute("height", "16");
      r.setAttribute("class", ["green", "yellow", "red"].includes(k) ? k : "other");
      x += w;
      return r;
    }));
  }

  // ---- page states ----------------------------------------------------------

  function setStatus(text, error) {
    const el = $("status");
    el.textContent = text;
    el.classList.toggle("error", !!error);
  }

  function showSignIn(message) {
    clearTimeout(timer);
    $("board").hidden = true;
    $("signout").hidden = true;
    $("signin").hidden = false;
    $("signin-message").textContent = message;
    setStatus("Signed out");
  }

  function showBoard() {
    $("signin").hidden = true;
    $("board").hidden = false;
    $("signout").hidden = false;
  }

  async function start() {
    $("signin-button").addEventListener("click", () => signIn());
    $("signout").addEventListener("click", () => signOut());
    const params = new URLSearchParams(location.search);
    if (params.has("code") || params.has("error")) {
      try {
        await finishSignIn(params);
        freshSignIn = true;
      } catch (e) {
        showSignIn("Sign-in failed: " + e.message);
        return;
      }
    }
    if (await accessToken()) {
      showBoard();
      setStatus("Loading…");
      poll();
      return;
    }
    if (store.get("signedout")) {
      showSignIn("You are signed out.");
      return;
    }
    signIn();
  }

  start();
})();
