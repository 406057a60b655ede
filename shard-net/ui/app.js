// The shard web UI: every action goes through the node's control API (/v1, /ui); this script
// only shows pages and what the API answers. No inline script or style (the CSP forbids it).
"use strict";

let csrf = null;

const $ = (id) => document.getElementById(id);

function show(page) {
  for (const id of ["login-page", "signup-page", "code-page", "files-page"]) {
    $(id).hidden = id !== page;
  }
  $("nav").hidden = page !== "files-page";
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

// Calls the API; errors become an Error whose message has the cause and the fix.
async function api(method, path, body) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (csrf && method !== "GET") headers["X-CSRF-Token"] = csrf;
  let response;
  try {
    response = await fetch(path, {
      method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new Error("The node does not answer. Is `shard serve` still running?");
  }
  let data = null;
  try { data = await response.json(); } catch (e) { data = null; }
  if (!response.ok) {
    const cause = (data && data.error) || `the node answered ${response.status}`;
    const hint = data && data.hint ? `\nWhat to do: ${data.hint}` : "";
    const error = new Error(cause + hint);
    error.status = response.status;
    throw error;
  }
  return data;
}

function human(bytes) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes, unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`;
}

async function loadFiles() {
  const listing = await api("GET", "/v1/ls");
  const body = $("files").querySelector("tbody");
  body.replaceChildren();
  for (const f of listing.files) {
    const row = document.createElement("tr");
    const cells = [
      f.name,
      f.kind === "dir" ? "folder" : human(f.size),
      f.stored_at ? new Date(f.stored_at * 1000).toLocaleString() : "",
      String(f.versions),
    ];
    for (const text of cells) {
      const td = document.createElement("td");
      td.textContent = text;
      row.append(td);
    }
    const health = document.createElement("td");
    if (f.health && f.health.state) {
      const badge = document.createElement("span");
      badge.className = `badge ${f.health.state}`;
      badge.textContent = f.health.state;
      health.append(badge);
    }
    row.append(health);
    body.append(row);
  }
  $("files-empty").hidden = listing.files.length > 0;
}

async function enter(session) {
  csrf = session.csrf;
  $("who").textContent = `Logged in as ${session.user}`;
  show("files-page");
  await loadFiles();
}

async function start() {
  $("to-signup").addEventListener("click", (e) => { e.preventDefault(); showError(""); show("signup-page"); });
  $("to-login").addEventListener("click", (e) => { e.preventDefault(); showError(""); show("login-page"); });

  $("login-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const form = e.target;
    const button = form.querySelector("button");
    button.disabled = true; // a double click logs in once
    showError("");
    try {
      const session = await api("POST", "/ui/login", {
        user: form.user.value, password: form.password.value,
      });
      form.password.value = "";
      await enter(session);
    } catch (err) {
      showError(err.message);
    } finally {
      button.disabled = false;
    }
  });

  $("signup-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const form = e.target;
    showError("");
    if (form.password.value !== form.again.value) {
      showError("The two passphrases differ.\nWhat to do: type the same passphrase twice.");
      return;
    }
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      const created = await api("POST", "/ui/signup", {
        user: form.user.value, password: form.password.value,
      });
      form.password.value = ""; form.again.value = "";
      $("code").textContent = created.recovery_code;
      $("written").checked = false;
      $("code-done").disabled = true;
      $("login-form").user.value = created.user;
      show("code-page");
    } catch (err) {
      showError(err.message);
    } finally {
      button.disabled = false;
    }
  });

  $("written").addEventListener("change", () => { $("code-done").disabled = !$("written").checked; });
  $("code-done").addEventListener("click", () => {
    $("code").textContent = ""; // shown once: gone from the page
    show("login-page");
  });

  $("logout").addEventListener("click", async () => {
    showError("");
    try {
      await api("POST", "/ui/logout");
    } catch (err) {
      showError(err.message);
    }
    csrf = null;
    show("login-page");
  });

  try {
    await enter(await api("GET", "/ui/session"));
  } catch (err) {
    if (err.status !== 401) showError(err.message);
    show("login-page");
  }
}

document.addEventListener("DOMContentLoaded", start);
