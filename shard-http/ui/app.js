// The shard web UI: every action goes through the node's control API (/v1, /ui); this script
// only shows pages and what the API answers. No inline script or style (the CSP forbids it).
"use strict";

// The session key: sent with every request (the cookie alone is refused, as browsers send it
// to every port of this host). Kept in sessionStorage, which belongs to this page's origin
// (scheme, host and port) and this tab, so a reload keeps the session.
const KEY = "shard-session";
let csrf = sessionStorage.getItem(KEY);

function keep(key) {
  csrf = key;
  if (key) sessionStorage.setItem(KEY, key); else sessionStorage.removeItem(KEY);
}
// What the session may do: pair and add accounts (the administrator), folders on the node.
let admin = false;
let nodePaths = [];
// The setup link's token (the node has no account yet), read from the URL's fragment, which
// the browser never sends to the server.
let setup = null;

const $ = (id) => document.getElementById(id);

const PAGES = ["login-page", "signup-page", "code-page", "files-page", "backups-page", "peers-page", "health-page", "how-page"];
const INSIDE = ["files-page", "backups-page", "peers-page", "health-page", "how-page"];

function show(page) {
  for (const id of PAGES) $(id).hidden = id !== page;
  $("nav").hidden = !INSIDE.includes(page);
  // The banner is the account's: not on the pages before login.
  if (!INSIDE.includes(page)) $("backup-alert").hidden = true;
}

async function goTo(page) {
  showError("");
  show(page);
  // The banner on every page (the files page asks with its listing).
  if (INSIDE.includes(page) && page !== "files-page") loadBackupAlerts().catch(() => {});
  try {
    if (page === "files-page") await loadFiles();
    if (page === "backups-page") await loadBackups();
    if (page === "peers-page") await loadPeers();
    if (page === "how-page") await loadHowFiles();
  } catch (err) {
    handle(err);
  }
}

// An error in place; an ended session leads back to the login page.
function handle(err) {
  // 401: no session; 403 for the key: this tab's key is not its session's (it ended).
  if (err.status === 401 || (err.status === 403 && /session key/.test(err.message))) {
    keep(null);
    show("login-page");
  }
  showError(err.message);
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

// Calls the API; errors become an Error whose message has the cause and the fix.
async function api(method, path, body) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (csrf) headers["X-CSRF-Token"] = csrf;
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

function cell(row, content) {
  const td = document.createElement("td");
  if (typeof content === "string") td.textContent = content; else if (content) td.append(content);
  row.append(td);
  return td;
}

function button(text, action) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = text;
  b.addEventListener("click", async () => {
    b.disabled = true; // a double click acts once
    showError("");
    try { await action(); } catch (err) { handle(err); } finally { b.disabled = false; }
  });
  return b;
}

// The progress bar: bytes done of total, with rate and ETA.
function showProgress(label, done, total, elapsedSecs) {
  const rate = done / Math.max(elapsedSecs, 0.001);
  const eta = rate > 0 && total > done ? Math.round((total - done) / rate) : 0;
  $("bar").max = Math.max(total, 1);
  $("bar").value = done;
  $("progress-text").textContent =
    `${label}: ${human(done)} of ${human(total)}, ${human(Math.round(rate))}/s` + (eta ? `, about ${eta} s left` : "");
}

// Follows a job's server-sent events (read with fetch, as EventSource cannot send the session
// key): a progress bar with rate and ETA; resolves with its result.
async function follow(job, label) {
  $("progress").hidden = false;
  const lost = new Error("Lost contact with the node while following the job.\nWhat to do: reload the page; the job goes on in the node.");
  const update = (state) => showProgress(label, state.bytes_done || 0, state.bytes_total || 0, state.elapsed_secs || 0);
  try {
    let response;
    try {
      response = await fetch(`/v1/jobs/${job}/events`, { headers: { "X-CSRF-Token": csrf || "" }, credentials: "same-origin" });
    } catch (e) {
      throw lost;
    }
    if (!response.ok || !response.body) {
      let data = null;
      try { data = await response.json(); } catch (e) { data = null; }
      const error = new Error((data && data.error) || `the node answered ${response.status}`);
      error.status = response.status;
      throw error;
    }
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffered = "";
    for (;;) {
      let chunk;
      try { chunk = await reader.read(); } catch (e) { throw lost; }
      if (chunk.done) throw lost;
      buffered += chunk.value;
      // Events end with a blank line; each has an `event:` and a `data:` line.
      let end;
      while ((end = buffered.indexOf("\n\n")) >= 0) {
        const block = buffered.slice(0, end);
        buffered = buffered.slice(end + 2);
        let name = "message", data = "";
        for (const line of block.split("\n")) {
          if (line.startsWith("event:")) name = line.slice(6).trim();
          else if (line.startsWith("data:")) data += line.slice(5).trim();
        }
        if (!data) continue; // a keep-alive
        const state = JSON.parse(data);
        update(state);
        if (name === "end") {
          reader.cancel().catch(() => {});
          if (state.state === "done") return state.result;
          throw new Error(`${state.error}\nWhat to do: ${state.hint}`);
        }
      }
    }
  } finally {
    $("progress").hidden = true;
  }
}

// Downloads with a form posted to the node into a hidden frame of its own: a link cannot
// carry the session key, a form can; the browser saves the answer as it arrives (no copy of
// the file in the page); the page stays as it is (an upload or a job being followed goes
// on, several downloads run side by side); and an error answer, which the frame shows
// instead of saving, is read from it and shown here.
function downloadFile(f) {
  const frame = document.createElement("iframe");
  frame.name = `download-${Date.now()}-${Math.random().toString(36).slice(2)}`;
  frame.hidden = true;
  frame.addEventListener("load", () => {
    // The frame's first, empty page loads too: not an answer yet.
    let href = "";
    try { href = frame.contentWindow.location.href; } catch (e) { href = ""; }
    if (href === "about:blank") return;
    // Only an answer that is not a download loads into the frame: the error.
    let text = "";
    try { text = frame.contentDocument.body.textContent; } catch (e) { text = ""; }
    let data = null;
    try { data = JSON.parse(text); } catch (e) { data = null; }
    if (data && data.error) {
      const error = new Error(`${f.name}: ${data.error}${data.hint ? `\nWhat to do: ${data.hint}` : ""}`);
      error.status = /^not logged in/.test(data.error) ? 401 : 0;
      handle(error);
    }
    frame.remove();
  });
  document.body.append(frame);
  const form = document.createElement("form");
  form.method = "POST";
  form.action = "/v1/download";
  form.target = frame.name;
  form.hidden = true;
  // `at`: out of a backup snapshot (`name` is then JOB/path in it).
  const fields = [["name", f.name], ["csrf", csrf || ""]];
  if (f.at) fields.push(["at", f.at]);
  for (const [name, value] of fields) {
    const input = document.createElement("input");
    input.type = "hidden";
    input.name = name;
    input.value = value;
    form.append(input);
  }
  document.body.append(form);
  form.submit();
  setTimeout(() => form.remove(), 1000);
  // A download leaves the frame empty for good: it goes after a while.
  setTimeout(() => frame.remove(), 3600 * 1000);
}

// Sends a file; the node stores it while it arrives, so the bytes sent are the progress (with
// rate and ETA), then the job's events cover the last chunks.
function upload(file) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `/v1/upload?name=${encodeURIComponent(file.name)}&size=${file.size}`);
    xhr.setRequestHeader("X-CSRF-Token", csrf);
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    const started = Date.now();
    $("progress").hidden = false;
    xhr.upload.onprogress = (e) => showProgress(`storing ${file.name}`, e.loaded, file.size, (Date.now() - started) / 1000);
    xhr.onerror = () => {
      $("progress").hidden = true;
      reject(new Error(`${file.name}: the upload broke off.\nWhat to do: check that \`shard serve\` is running and upload the file again; nothing was stored.`));
    };
    xhr.onload = () => {
      let data = null;
      try { data = JSON.parse(xhr.responseText); } catch (e) { data = null; }
      if (xhr.status !== 200) {
        $("progress").hidden = true;
        const error = new Error(`${file.name}: ${(data && data.error) || xhr.status}` + (data && data.hint ? `\nWhat to do: ${data.hint}` : ""));
        error.status = xhr.status;
        reject(error);
        return;
      }
      follow(data.job, `storing ${file.name}`).then(resolve, reject);
    };
    xhr.send(file);
  });
}

async function uploadAll(files) {
  showError("");
  try {
    for (const file of files) await upload(file);
  } catch (err) {
    handle(err);
  }
  await loadFiles().catch(handle);
}

// One formatter for every row: toLocaleString() per row costs more than the whole table.
const DATE = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

// Listings asked for so far: only the latest one asked is drawn (an older reply that comes
// late would draw what is no longer so).
let filesAsked = 0;

async function loadFiles() {
  // What is shown is the last listing until the new one arrives: say so, so that neither a
  // person (through assistive tools) nor a script reads it as current.
  const mine = ++filesAsked;
  $("files").setAttribute("aria-busy", "true");
  try {
    const listing = await api("GET", "/v1/ls");
    if (mine !== filesAsked) return;
    renderFiles(listing);
    await loadTrash();
  } finally {
    if (mine === filesAsked) $("files").setAttribute("aria-busy", "false");
  }
}

// The trash: what Delete moved there, until [vault] trash_days have passed.
let shownTrash = [];
let trashDays = 30;

async function loadTrash() {
  const trash = await api("GET", "/v1/trash");
  shownTrash = trash.items;
  trashDays = trash.trash_days;
  $("trash-box").hidden = shownTrash.length === 0;
  $("trash-summary").textContent = `Trash (${shownTrash.length})`;
  $("trash-days").textContent = String(trashDays);
  const rows = document.createDocumentFragment();
  shownTrash.forEach((item, i) => {
    const row = document.createElement("tr");
    const cells = [
      item.kind === "dir" ? `${item.name}/ (${item.entries_under} entries)` : item.name,
      human(item.size),
      DATE.format(new Date(item.removed_at * 1000)),
      DATE.format(new Date(item.kept_until * 1000)),
    ];
    for (const text of cells) {
      const td = document.createElement("td");
      td.textContent = text;
      row.append(td);
    }
    const actions = document.createElement("td");
    actions.append(rowButton("Restore", "restore", i), " ", rowButton("Delete for good", "purge", i));
    row.append(actions);
    rows.append(row);
  });
  $("trash").querySelector("tbody").replaceChildren(rows);
}

const TRASH_ACTIONS = {
  async restore(item) {
    const done = await api("POST", "/v1/trash/restore", { name_hex: item.name_hex });
    if (done.newer_kept) {
      showError(`${item.name} was stored again after it was deleted: the newer one stays the newest, the restored ones are its earlier versions.`);
    }
    await loadFiles();
  },
  async purge(item) {
    if (!window.confirm(`Delete ${item.name} for good? It cannot be restored afterwards.`)) return;
    await api("POST", "/v1/trash/empty", { name_hex: item.name_hex });
    await loadFiles();
  },
};

async function onTrashAction(e) {
  const b = e.target.closest("button[data-action]");
  const item = b && shownTrash[Number(b.dataset.index)];
  if (!item || b.disabled) return;
  b.disabled = true; // a double click acts once
  showError("");
  try { await TRASH_ACTIONS[b.dataset.action](item); } catch (err) { handle(err); } finally { b.disabled = false; }
}

async function emptyTrash(e) {
  const b = e.currentTarget;
  if (b.disabled) return;
  if (!window.confirm(`Delete everything in the trash for good (${shownTrash.length} items)? It cannot be restored afterwards.`)) return;
  b.disabled = true;
  showError("");
  try {
    await api("POST", "/v1/trash/empty", { all: true });
    await loadFiles();
  } catch (err) { handle(err); } finally { b.disabled = false; }
}

// A red banner while a backup job failed, was partial or is overdue, or the account's jobs
// cannot run: protection that stopped must be loud.
async function loadBackupAlerts() {
  const status = await api("GET", "/v1/status");
  const alerts = status.backups || [];
  const a = $("backup-alert");
  a.hidden = alerts.length === 0;
  a.textContent = alerts
    .map((x) => (x.job ? `Backup ${x.job} needs attention: ${x.reason}.` : `Backups wait: ${x.reason}.`))
    .join(" ");
}

// The listing on screen; the table's buttons name a row of it (one click handler for all).
let shownFiles = [];

// Rows are drawn a screenful at a time, more as the list scrolls into view (as file managers
// do): laying out a thousand table rows at once took the page ~300 ms to show.
const ROWS_AT_ONCE = 100;
let filesObserver = null;

// "Am I protected?" at a glance, from the listing: how many files, how many machine losses
// the most exposed one survives (its acknowledged shares beyond k), and what is not known or
// at risk now.
function renderProtection(files) {
  const p = $("protection");
  const stored = files.filter((f) => f.health && f.health.state);
  p.hidden = stored.length === 0;
  if (p.hidden) return;
  const count = (state) => stored.filter((f) => f.health.state === state).length;
  const spares = stored.map((f) => f.health.spare).filter((s) => typeof s === "number");
  const worst = spares.length ? Math.min(...spares) : null;
  const files_ = `${stored.length} file${stored.length === 1 ? "" : "s"}`;
  const [lost, degraded, unknown] = [count("lost"), count("degraded"), count("unknown")];
  let text;
  if (lost > 0) {
    text = `At risk: ${lost} of ${files_} cannot be restored now (too few shares reachable). See Health.`;
  } else if (worst !== null && worst < 1) {
    text = `At risk: ${files_} stored, but the most exposed one survives no further machine loss. Repair it on the Health page.`;
  } else {
    const survives = worst === null ? "" :
      `; every file survives the loss of any ${worst} machine${worst === 1 ? "" : "s"}`;
    text = `Protected: ${files_}${survives}.`;
    if (degraded > 0) text += ` ${degraded} with fewer shares than asked: Health repairs them.`;
    if (unknown > 0) text += ` ${unknown} with shares on machines offline now: not known until they are back.`;
  }
  p.textContent = text;
  p.className = `protection${lost > 0 || (worst !== null && worst < 1) ? " at-risk" : unknown > 0 ? " unknown" : ""}`;
}

function renderFiles(listing) {
  // Asked beside the listing, however it was fetched (a page load brings it along).
  loadBackupAlerts().catch(() => {});
  renderProtection(listing.files);
  shownFiles = listing.files;
  $("files").querySelector("tbody").replaceChildren();
  $("files-empty").hidden = listing.files.length > 0;
  if (filesObserver) filesObserver.disconnect();
  filesObserver = null;
  appendFileRows(0);
}

function appendFileRows(from) {
  const to = Math.min(from + ROWS_AT_ONCE, shownFiles.length);
  const rows = document.createDocumentFragment();
  for (let i = from; i < to; i++) rows.append(fileRow(shownFiles[i], i));
  $("files").querySelector("tbody").append(rows);
  const more = $("files-more");
  more.hidden = to >= shownFiles.length;
  more.textContent = `Showing ${to} of ${shownFiles.length} — scroll for more`;
  if (to < shownFiles.length) {
    if (!filesObserver) {
      filesObserver = new IntersectionObserver((entries) => {
        if (entries.some((e) => e.isIntersecting)) appendFileRows(Number(more.dataset.next));
      }, { rootMargin: "400px" });
      filesObserver.observe(more);
    }
    more.dataset.next = String(to);
  } else if (filesObserver) {
    filesObserver.disconnect();
    filesObserver = null;
  }
}

function fileRow(f, i) {
  const row = document.createElement("tr");
  const cells = [
    f.name,
    f.kind === "dir" ? "folder" : human(f.size),
    f.stored_at ? DATE.format(new Date(f.stored_at * 1000)) : "",
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
  const actions = document.createElement("td");
  if (f.kind === "file") {
    actions.append(rowButton("Download", "download", i), " ", rowButton("Picture", "picture", i), " ");
  }
  actions.append(rowButton("Delete", "delete", i));
  row.append(actions);
  return row;
}

function rowButton(text, action, index) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = text;
  b.dataset.action = action;
  b.dataset.index = String(index);
  return b;
}

const FILE_ACTIONS = {
  async download(f) { downloadFile(f); },
  async picture(f) {
    await goTo("how-page");
    $("how-file").value = f.name;
    await drawPicture(f.name);
  },
  async delete(f) {
    if (!window.confirm(`Move ${f.name} and all its versions to the trash? You can restore it from the trash for ${trashDays} days.`)) return;
    await api("POST", "/v1/rm", { name_hex: f.name_hex });
    await loadFiles();
    $("trash-box").open = true;
  },
};

async function onFileAction(e) {
  const b = e.target.closest("button[data-action]");
  const f = b && shownFiles[Number(b.dataset.index)];
  if (!f || b.disabled) return;
  b.disabled = true; // a double click acts once
  showError("");
  try { await FILE_ACTIONS[b.dataset.action](f); } catch (err) { handle(err); } finally { b.disabled = false; }
}

// The Backups page: the account's jobs; one job's snapshots, the diff between two of them;
// one folder of a snapshot at a time, a file of it downloaded, a file, folder or the whole
// snapshot restored onto the node (under the folders open to web sessions).
let shownJobs = [];
// The job whose snapshots are shown, and what a restore asked for would restore.
let openJob = null;
let restoreTarget = null;
// The job the remove box asks about.
let removing = null;
// The next look at the jobs while one runs.
let jobsRefresh = null;
// Entries of a snapshot's folder asked for at once (the node gives at most 1000).
const TREE_PAGE = 500;

const when = (secs) => DATE.format(new Date(secs * 1000));
const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

function note(text) {
  const span = document.createElement("span");
  span.className = "note";
  span.textContent = text;
  return span;
}

function say(id, text) {
  $(id).textContent = text;
  $(id).hidden = !text;
}

async function loadBackups() {
  loadBackupAlerts().catch(() => {});
  const answer = await api("GET", "/v1/backup/ls");
  shownJobs = answer.jobs;
  $("jobs").querySelector("tbody").replaceChildren(...answer.jobs.map(jobRow));
  $("jobs-empty").hidden = answer.jobs.length > 0;
  $("jobs").hidden = answer.jobs.length === 0;
  if (openJob && !answer.jobs.some((j) => j.name === openJob)) closeJob();
  // A run under way (the schedule's, or another tab's) is followed until it ends.
  clearTimeout(jobsRefresh);
  if (answer.jobs.some((j) => j.running)) {
    jobsRefresh = setTimeout(() => {
      if (!$("backups-page").hidden && csrf) loadBackups().catch(() => {});
    }, 2000);
  }
}

function jobRow(j) {
  const row = document.createElement("tr");
  row.dataset.job = j.name;
  cell(row, j.name);
  const folder = cell(row, j.path);
  if (j.exclude.length) folder.append(note(`leaves out ${j.exclude.join(", ")}`));
  cell(row, j.every);
  const lastCell = cell(row, "");
  const last = j.last;
  if (j.running) {
    lastCell.append("running now");
  } else if (last) {
    const badge = document.createElement("span");
    badge.className = `badge ${last.outcome}`;
    badge.textContent = last.outcome;
    lastCell.append(`${when(last.started)} `, badge,
      note(last.outcome === "failed" ? "no snapshot made" : `${plural(last.files, "file")}, ${human(last.bytes_sent)} sent`));
  } else {
    lastCell.append("never");
  }
  if (j.attention) lastCell.append(note(j.attention));
  cell(row, j.next_run * 1000 <= Date.now() ? "due now" : when(j.next_run));
  cell(row, String(j.snapshots)).append(note(`keeps ${j.keep}`));
  const run = button("Run now", () => runJob(j.name));
  run.disabled = j.running;
  cell(row, run).append(" ", button("Snapshots", () => openSnapshots(j.name)), " ",
    button("Remove", async () => askRemove(j)));
  return row;
}

// Runs a job now, following it (progress, then what it did).
async function runJob(name) {
  say("backup-result", "");
  const { job } = await api("POST", "/v1/backup/run", { name });
  await loadBackups().catch(handle);
  try {
    say("backup-result", runSummary(await follow(job, `backing up ${name}`)));
  } finally {
    await loadBackups().catch(handle);
    if (openJob === name) await openSnapshots(name).catch(handle);
  }
}

function runSummary(r) {
  let text = `${r.job}: snapshot ${r.snapshot} made, ${plural(r.files, "file")} (${human(r.bytes)}); ` +
    `since the one before ${r.added} added, ${r.removed} removed, ${r.changed} changed; ${human(r.bytes_sent)} sent.`;
  if (r.outcome === "partial") {
    text += ` Partial: ${plural(r.unreadable_count, "path")} could not be read (${r.unreadable.join("; ")}).`;
  }
  if (r.forgotten.length) text += ` The keep rules forgot snapshot ${r.forgotten.join(", ")}.`;
  return text;
}

function askRemove(j) {
  removing = j;
  $("remove-what").textContent = `Remove the backup job ${j.name}? It stops backing up ${j.path}. ` +
    `Its ${plural(j.snapshots, "snapshot")} stay restorable unless you forget them too.`;
  $("remove-forget").checked = false;
  $("remove-box").hidden = false;
  $("remove-box").scrollIntoView({ block: "nearest" });
}

async function removeJob() {
  const j = removing;
  if (!j) return;
  const forget = $("remove-forget").checked;
  const question = forget
    ? `Remove ${j.name} and forget its ${plural(j.snapshots, "snapshot")}? What they hold is deleted from every machine. This cannot be undone.`
    : `Remove ${j.name}? Its snapshots stay.`;
  if (!window.confirm(question)) return;
  const removed = await api("POST", "/v1/backup/rm", { name: j.name, forget_snapshots: forget });
  removing = null;
  $("remove-box").hidden = true;
  say("backup-result", forget
    ? `Removed ${removed.job}; ${plural(removed.snapshots_forgotten, "snapshot")} forgotten.`
    : `Removed ${removed.job}; its ${plural(removed.snapshots_kept, "snapshot")} stay (\`shard get ${removed.job}@N\` restores them).`);
  if (openJob === j.name) closeJob();
  await loadBackups();
}

function closeJob() {
  openJob = null;
  restoreTarget = null;
  $("snapshots-box").hidden = true;
  $("tree-box").hidden = true;
  $("restore-form").hidden = true;
}

async function addJob(form) {
  const value = (field) => form.querySelector(`[name=${field}]`).value.trim();
  const body = { path: value("path"), exclude: value("exclude").split(",").map((x) => x.trim()).filter(Boolean) };
  for (const field of ["name", "every", "keep"]) if (value(field)) body[field] = value(field);
  const job = await api("POST", "/v1/backup/add", body);
  form.reset();
  say("backup-result", `Added ${job.name}: ${job.path} every ${job.every}. Its first run is due now: run it, or the node will soon.`);
  await loadBackups();
}

// A job's snapshots, newest first, and the diff's choices (the two newest).
async function openSnapshots(name) {
  const answer = await api("GET", `/v1/snapshots?${new URLSearchParams({ name })}`);
  if (openJob !== name) $("tree-box").hidden = true;
  openJob = name;
  const newestFirst = answer.snapshots.slice().reverse();
  $("snapshots-title").textContent = `Snapshots of ${name}`;
  $("snapshots").querySelector("tbody").replaceChildren(...newestFirst.map((s) => snapshotRow(name, s)));
  $("snapshots").hidden = newestFirst.length === 0;
  $("snapshots-empty").hidden = newestFirst.length > 0;
  // Drawn again after each run: the choice starts again from the two newest.
  for (const [id, pick] of [["diff-from", 1], ["diff-to", 0]]) {
    const select = $(id);
    select.replaceChildren(...newestFirst.map((s) => {
      const option = document.createElement("option");
      option.value = String(s.no);
      option.textContent = `${s.no} (${when(s.at)})`;
      return option;
    }));
    if (newestFirst[pick]) select.value = String(newestFirst[pick].no);
  }
  $("diff-form").hidden = newestFirst.length < 2;
  $("diff").hidden = true;
  $("snapshots-box").hidden = false;
}

function snapshotRow(job, s) {
  const row = document.createElement("tr");
  row.dataset.snapshot = String(s.no);
  cell(row, s.partial ? `${s.no} (partial)` : String(s.no));
  cell(row, when(s.at));
  cell(row, String(s.files));
  cell(row, human(s.bytes));
  cell(row, `${s.added} added, ${s.removed} removed, ${s.changed} changed`);
  const actions = cell(row, button("Browse", () => browse(job, s.no, "", 0)));
  if (nodePaths.length) actions.append(" ", button("Restore…", async () => askRestore(job, s.no, "")));
  return row;
}

async function compare() {
  const query = new URLSearchParams({ name: openJob, from: $("diff-from").value, to: $("diff-to").value });
  renderDiff(await api("GET", `/v1/diff?${query}`));
}

function renderDiff(d) {
  // Paths under the job's name: shown as in its folder.
  const inFolder = (p) => (p.startsWith(`${d.job}/`) ? p.slice(d.job.length + 1) : p);
  $("diff-summary").textContent = `From snapshot ${d.from} to snapshot ${d.to}: ` +
    `${d.added.length} added, ${d.removed.length} removed, ${d.changed.length} changed.`;
  for (const [id, title, paths] of [["added", "Added", d.added], ["removed", "Removed", d.removed], ["changed", "Changed", d.changed]]) {
    $(`diff-${id}-title`).textContent = `${title} (${paths.length})`;
    $(`diff-${id}`).replaceChildren(...paths.map((p) => {
      const li = document.createElement("li");
      li.textContent = inFolder(p);
      return li;
    }));
  }
  $("diff").hidden = false;
}

// One folder of a snapshot, a page at a time (`offset` > 0: the next page, added below).
async function browse(job, no, path, offset) {
  const query = new URLSearchParams({ name: job, at: String(no), path, offset: String(offset), limit: String(TREE_PAGE) });
  const page = await api("GET", `/v1/snapshot/ls?${query}`);
  $("tree-title").textContent = `Snapshot ${page.snapshot} of ${job}${page.folder ? `: ${page.folder}` : ""}`;
  const crumbs = [button(job, () => browse(job, no, "", 0))];
  const parts = page.folder ? page.folder.split("/") : [];
  parts.forEach((part, i) => {
    crumbs.push(" / ", button(part, () => browse(job, no, parts.slice(0, i + 1).join("/"), 0)));
  });
  $("crumbs").replaceChildren(...crumbs);
  const body = $("tree").querySelector("tbody");
  if (page.offset === 0) body.replaceChildren();
  body.append(...page.entries.map((e) => treeRow(job, page.snapshot, e)));
  $("tree-empty").hidden = page.total > 0;
  const shown = page.offset + page.entries.length;
  const more = $("tree-more");
  more.hidden = shown >= page.total;
  more.replaceChildren(`Showing ${shown} of ${page.total} `,
    button("Show more", () => browse(job, no, page.folder, shown)));
  if (page.offset === 0) $("restore-form").hidden = true;
  $("tree-box").hidden = false;
}

function treeRow(job, no, e) {
  const row = document.createElement("tr");
  row.dataset.path = e.path;
  const shownName = e.kind === "dir" ? `${e.name}/` : e.kind === "link" ? `${e.name} → ${e.link_target || ""}` : e.name;
  cell(row, shownName);
  cell(row, e.kind === "file" ? human(e.size) : e.kind === "dir" ? "folder" : "link");
  cell(row, when(e.mtime));
  const actions = cell(row, "");
  if (e.kind === "dir") actions.append(button("Open", () => browse(job, no, e.path, 0)), " ");
  if (e.kind === "file") {
    actions.append(button("Download", async () => downloadFile({ name: `${job}/${e.path}`, at: String(no) })), " ");
  }
  if (nodePaths.length) actions.append(button("Restore…", async () => askRestore(job, no, e.path)));
  return row;
}

function askRestore(job, no, path) {
  restoreTarget = { name: path ? `${job}/${path}` : job, at: String(no) };
  $("restore-what").textContent = path
    ? `Restore ${path} as it was in snapshot ${no} of ${job}.`
    : `Restore all of snapshot ${no} of ${job}.`;
  const form = $("restore-form");
  form.out.value = "";
  form.out.placeholder = `under ${nodePaths.join(" or ")}`;
  say("restore-result", "");
  form.hidden = false;
  form.scrollIntoView({ block: "nearest" });
  form.out.focus();
}

async function restore(out) {
  const target = restoreTarget;
  if (!target) return;
  const { job } = await api("POST", "/v1/get", { name: target.name, at: target.at, out });
  const r = await follow(job, `restoring ${target.name}`);
  $("restore-form").hidden = true;
  say("restore-result", `Restored ${plural(r.files, "file")} (${human(r.bytes)}) of snapshot ${target.at} to ${r.out}.`);
}

async function loadPeers() {
  const answer = await api("GET", "/v1/peers");
  const body = $("peers").querySelector("tbody");
  body.replaceChildren();
  for (const p of answer.peers) {
    const row = document.createElement("tr");
    cell(row, p.name);
    cell(row, p.online ? "online" : "offline");
    // How it is reached: the LAN, iroh on a direct path, or through a relay; and its round trip.
    const via = { lan: "LAN", direct: "direct (internet)", relay: "through a relay" }[p.path] || "";
    cell(row, p.online ? `${via}${p.rtt_ms != null ? `, ${p.rtt_ms.toFixed(1)} ms` : ""}` : "");
    const lan = (p.addrs || []).find((a) => !a.startsWith("iroh:"));
    cell(row, p.path === "relay" ? "" : (p.addr || lan || ""));
    const bar = document.createElement("span");
    bar.className = "usage";
    const fill = document.createElement("span");
    const used = p.used || 0;
    fill.style.width = `${p.quota ? Math.min(100, (100 * used) / p.quota) : Math.min(100, used / 1e8)}%`;
    bar.append(fill);
    const usage = cell(row, bar);
    usage.append(` ${human(used)}`);
    if (admin) {
      cell(row, button("Remove", async () => {
        if (!window.confirm(`Unpair ${p.name}? Its shares are moved to other machines first.`)) return;
        await api("POST", "/v1/peers/rm", { id: p.id });
        await loadPeers();
      }));
    } else {
      cell(row, "");
    }
    body.append(row);
  }
  const nearby = $("nearby");
  nearby.replaceChildren();
  for (const n of answer.nearby || []) {
    const li = document.createElement("li");
    li.textContent = `${n.name} (${n.short_id || n.id})`;
    nearby.append(li);
  }
}

async function runCheck(readFraction) {
  const { job } = await api("POST", "/v1/check", { read_fraction: readFraction });
  const report = await follow(job, "checking");
  const total = report.healthy + report.degraded + report.lost + report.unknown;
  const more = report.files_not_listed > 0
    ? ` The first of each state are listed; ${report.files_not_listed} more are not.`
    : "";
  $("health-summary").textContent =
    `${total} files: ${report.healthy} healthy, ${report.degraded} degraded, ${report.lost} lost, ${report.unknown} unknown.${more}`;
  const body = $("health").querySelector("tbody");
  body.replaceChildren();
  for (const f of report.files) {
    const row = document.createElement("tr");
    cell(row, f.name);
    const badge = document.createElement("span");
    badge.className = `badge ${f.state}`;
    badge.textContent = f.state;
    cell(row, badge);
    const w = f.worst_chunk;
    cell(row, w ? `${w.good} of ${w.n} shares good (${w.k} needed)` : "");
    body.append(row);
  }
}

async function loadHowFiles() {
  const listing = await api("GET", "/v1/ls");
  const select = $("how-file");
  const current = select.value;
  select.replaceChildren();
  for (const f of listing.files.filter((f) => f.kind === "file")) {
    const option = document.createElement("option");
    option.value = f.name;
    option.textContent = f.name;
    select.append(option);
  }
  if (current) select.value = current;
  if (select.value) await drawPicture(select.value);
}

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

// The picture: a row per chunk; in it, one circle per share, coloured by its state, under
// the name of the machine holding it.
async function drawPicture(name) {
  const picture = await api("GET", `/v1/picture?name=${encodeURIComponent(name)}`);
  const nodes = picture.nodes.map((n) => n.node);
  const colWidth = 110, rowHeight = 46, left = 150, top = 40;
  const width = left + colWidth * Math.max(nodes.length, 1) + 20;
  const height = top + rowHeight * Math.max(picture.chunks.length, 1) + 10;
  const root = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": `Where the shares of ${name} are` });
  picture.nodes.forEach((n, i) => {
    root.append(svg("text", { x: left + i * colWidth + 10, y: 20 }, `${n.name}${n.online ? "" : " (offline)"}`));
  });
  picture.chunks.forEach((c, r) => {
    const y = top + r * rowHeight + 18;
    root.append(svg("text", { x: 4, y: y + 4 }, `chunk ${r + 1} (${c.k} of ${c.n})`));
    for (const share of c.shares) {
      const col = Math.max(nodes.indexOf(share.node), 0);
      const circle = svg("circle", { cx: left + col * colWidth + 30, cy: y, r: 12, class: share.state });
      circle.append(svg("title", {}, `share ${share.index + 1} on ${share.node_name}: ${share.state}`));
      root.append(circle);
    }
  });
  $("picture").replaceChildren(root);
}

async function enter(session, listing) {
  keep(session.csrf);
  admin = !!session.admin;
  $("who").textContent = `Logged in as ${session.user}${admin ? " (administrator)" : ""}`;
  $("admin-only").hidden = !admin;
  $("not-admin").hidden = admin;
  const folders = session.node_paths || [];
  $("path-form").hidden = folders.length === 0;
  $("path-form").path.placeholder = folders.length ? `under ${folders.join(" or ")}` : "";
  nodePaths = folders;
  $("backup-form").hidden = folders.length === 0;
  $("backup-form").path.placeholder = folders.length ? `under ${folders.join(" or ")}` : "";
  $("backup-form-note").textContent = folders.length
    ? `A job made here backs up a folder under ${folders.join(" or ")} (the folders this node opens to web sessions).`
    : "No folder of this node is open to web sessions: the node's administrator lists them in [web] node_paths (config.toml); until then, add jobs with `shard backup add` on the node. Snapshots can be browsed and files downloaded here either way.";
  if (listing) {
    // Already fetched (page load): no second round trip.
    show("files-page");
    renderFiles(listing);
  } else {
    await goTo("files-page");
  }
}

async function start() {
  $("files").querySelector("tbody").addEventListener("click", onFileAction);
  $("trash").querySelector("tbody").addEventListener("click", onTrashAction);
  $("trash-empty-all").addEventListener("click", emptyTrash);
  $("to-login").addEventListener("click", (e) => {
    e.preventDefault();
    showError("");
    if (csrf) goTo("peers-page"); else show("login-page");
  });
  $("add-account").addEventListener("click", () => {
    showError("");
    $("signup-title").textContent = "Add an account to this node";
    $("signup-note").textContent = "It gets a vault of its own; give its owner the recovery code shown next.";
    show("signup-page");
  });

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
        user: form.user.value, password: form.password.value, setup: setup || undefined,
      });
      if (setup) {
        // Spent: out of the address bar and the history.
        setup = null;
        history.replaceState(null, "", location.pathname);
      }
      form.user.value = ""; form.password.value = ""; form.again.value = "";
      $("code").textContent = created.recovery_code;
      $("written").checked = false;
      $("code-done").disabled = true;
      if (!csrf) $("login-form").user.value = created.user;
      show("code-page");
    } catch (err) {
      showError(err.message);
    } finally {
      button.disabled = false;
    }
  });

  for (const link of document.querySelectorAll("nav a[data-page]")) {
    link.addEventListener("click", (e) => { e.preventDefault(); goTo(link.dataset.page); });
  }
  $("pick").addEventListener("change", (e) => uploadAll([...e.target.files]));
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); uploadAll([...e.dataTransfer.files]); });
  $("path-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    showError("");
    try {
      const { job } = await api("POST", "/v1/put", { paths: [e.target.path.value] });
      await follow(job, `storing ${e.target.path.value}`);
      await loadFiles();
    } catch (err) { handle(err); }
  });
  $("invite").addEventListener("click", async () => {
    try { $("invite-code").textContent = (await api("POST", "/v1/invite", {})).code; } catch (err) { handle(err); }
  });
  $("join-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    showError("");
    try { await api("POST", "/v1/join", { code: e.target.code.value.trim() }); e.target.code.value = ""; await loadPeers(); } catch (err) { handle(err); }
  });
  $("check").addEventListener("click", () => runCheck(0).catch(handle));
  $("check-read").addEventListener("click", () => runCheck(0.1).catch(handle));
  $("repair").addEventListener("click", async () => {
    try {
      const { job } = await api("POST", "/v1/repair", {});
      const r = await follow(job, "repairing");
      $("health-summary").textContent = `Repaired ${r.chunks_repaired} of ${r.chunks_degraded} degraded chunks (${r.shares_rebuilt} shares rebuilt).`;
    } catch (err) { handle(err); }
  });
  $("how-file").addEventListener("change", (e) => drawPicture(e.target.value).catch(handle));

  // A form's submit button is off while its request runs: a double click acts once.
  const onSubmit = (id, action) => $(id).addEventListener("submit", async (e) => {
    e.preventDefault();
    const b = e.target.querySelector("button[type=submit]");
    if (b.disabled) return;
    b.disabled = true;
    showError("");
    try { await action(e.target); } catch (err) { handle(err); } finally { b.disabled = false; }
  });
  onSubmit("backup-form", addJob);
  onSubmit("diff-form", compare);
  onSubmit("restore-form", (form) => restore(form.out.value.trim()));
  $("restore-no").addEventListener("click", () => { $("restore-form").hidden = true; });
  $("remove-yes").addEventListener("click", async (e) => {
    const b = e.currentTarget;
    if (b.disabled) return;
    b.disabled = true; // a double click asks once
    showError("");
    try { await removeJob(); } catch (err) { handle(err); } finally { b.disabled = false; }
  });
  $("remove-no").addEventListener("click", () => { removing = null; $("remove-box").hidden = true; });

  $("written").addEventListener("change", () => { $("code-done").disabled = !$("written").checked; });
  $("code-done").addEventListener("click", () => {
    $("code").textContent = ""; // shown once: gone from the page
    if (csrf) goTo("peers-page"); else show("login-page");
  });

  $("logout").addEventListener("click", async () => {
    showError("");
    try {
      await api("POST", "/ui/logout");
    } catch (err) {
      showError(err.message);
    }
    keep(null);
    // The next account must not see this one's jobs.
    $("backup-alert").hidden = true;
    $("backup-alert").textContent = "";
    closeJob();
    $("jobs").querySelector("tbody").replaceChildren();
    say("backup-result", "");
    say("restore-result", "");
    show("login-page");
  });

  const fragment = new URLSearchParams(location.hash.slice(1));
  if (fragment.get("setup")) {
    setup = fragment.get("setup");
    show("signup-page");
    return;
  }
  if (!csrf) {
    show("login-page");
    return;
  }
  try {
    // The session and the file list at once: a page load is one round trip.
    const [session, listing] = await Promise.all([
      api("GET", "/ui/session"),
      api("GET", "/v1/ls").catch(() => null),
    ]);
    await enter(session, listing);
  } catch (err) {
    if (err.status !== 401) showError(err.message);
    show("login-page");
  }
}

document.addEventListener("DOMContentLoaded", start);
