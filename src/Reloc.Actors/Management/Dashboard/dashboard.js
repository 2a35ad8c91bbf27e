// The node's read-only dashboard: polls the management API's lists, follows each relocation's progress stream
// and the cluster's event stream. Every value from the API goes in as text (textContent), never as markup.

const API = '/api/v1';
const REFRESH_MS = 5000;
const BUSY_REFRESH_MS = 2000; // while a relocation runs, so the disks' local bytes keep up with its bar
const KEEP_DONE_MS = 60000; // a finished relocation stays visible a while, so its outcome can be read
const MAX_EVENTS = 50;

/** Builds an element; strings among the children become text nodes. */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null && value !== false) node.setAttribute(name, String(value));
  }
  for (const child of children) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const $ = (id) => document.getElementById(id);

function bytes(n) {
  if (n === undefined || n === null) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${i === 0 ? n : n.toFixed(n < 10 ? 1 : 0)} ${units[i]}`;
}

// Rates in decimal units, as the console prints them.
function rate(bps) {
  if (!bps) return '–';
  const units = ['B/s', 'kB/s', 'MB/s', 'GB/s'];
  let i = 0;
  while (bps >= 1000 && i < units.length - 1) { bps /= 1000; i++; }
  return `${bps.toFixed(1)} ${units[i]}`;
}

function duration(seconds) {
  if (seconds === undefined || seconds === null || !isFinite(seconds)) return '–';
  seconds = Math.max(0, Math.round(seconds));
  if (seconds < 60) return `${seconds} s`;
  const m = Math.floor(seconds / 60), s = seconds % 60;
  if (m < 60) return `${m} min ${String(s).padStart(2, '0')} s`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, '0')} min`;
}

/** One decimal, rounded down: 100 only once every byte is local. */
function percent(part, total) {
  if (!total) return 0;
  return Math.min(100, Math.floor((part / total) * 1000) / 10);
}

function bar(pct, label) {
  const fill = el('div', { class: 'fill' });
  fill.style.width = `${pct}%`;
  return el('div', {
    class: 'bar', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100,
    'aria-valuenow': pct, 'aria-label': label, 'data-percent': pct,
  }, fill, el('span', { class: 'bar-text' }, `${pct.toFixed(1)} %`));
}

async function getJson(path) {
  const response = await fetch(API + path, { headers: { Accept: 'application/json' }, cache: 'no-store' });
  // The node wants credentials: its login form sets the session cookie, then brings the browser back here.
  if (response.status === 401) { location.assign('login.html'); throw new Error('not logged in'); }
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

// ---- sites and members ----

function renderCluster(cluster) {
  $('node').textContent = `${cluster.self}${cluster.version ? ' · ' + cluster.version : ''}`;
  const bySite = new Map();
  for (const m of cluster.members) {
    const site = m.site ?? '(no site)';
    if (!bySite.has(site)) bySite.set(site, []);
    bySite.get(site).push(m);
  }
  const cards = [...bySite.keys()].sort().map((site) => {
    const members = bySite.get(site).map((m) => {
      const badges = [];
      if (m.address === cluster.leader) badges.push(el('span', { class: 'badge' }, 'leader'));
      if (m.address === cluster.coordinator) badges.push(el('span', { class: 'badge' }, 'coordinator'));
      if (m.address === cluster.self) badges.push(el('span', { class: 'badge self' }, 'this node'));
      return el('li', {
        'data-member': m.address, 'data-status': m.status, 'data-reachable': m.reachable,
        'data-leader': m.address === cluster.leader, 'data-coordinator': m.address === cluster.coordinator,
      },
      el('div', { class: 'member-line' },
        el('span', { class: 'pill', 'data-state': m.reachable ? m.status.toLowerCase() : 'unreachable' },
          m.reachable ? m.status : `${m.status}, unreachable`),
        ...badges),
      el('div', { class: 'muted small' }, m.address, m.version ? ` · ${m.version}` : ''));
    });
    const allGood = bySite.get(site).every((m) => m.reachable && m.status === 'Up');
    return el('article', { class: 'site', 'data-site': site, 'data-healthy': allGood },
      el('h3', {}, site), el('ul', { class: 'members' }, ...members));
  });
  $('sites').replaceChildren(...cards);
}

// ---- disks ----

function renderDisks(list) {
  const rows = [...list.disks]
    .sort((a, b) => a.name.localeCompare(b.name) || a.site.localeCompare(b.site))
    .map((d) => {
      const local = percent(d.localBytes, d.size);
      return el('tr', { 'data-disk': d.name, 'data-site': d.site, 'data-epoch': d.epoch, 'data-phase': d.phase },
        el('td', { class: 'name' }, d.name),
        el('td', {}, d.site),
        el('td', {}, el('span', { class: 'pill', 'data-state': d.phase }, d.phase), d.peer ? ` ${d.phase === 'incoming' ? '←' : '→'} ${d.peer}` : ''),
        el('td', { class: 'num' }, d.epoch),
        el('td', { class: 'num' }, bytes(d.size)),
        el('td', { class: 'wide' }, bar(local, `${d.name} at ${d.site}: local`)),
        el('td', { class: 'num' }, d.clients));
    });
  $('disks').tBodies[0].replaceChildren(...rows);
  $('disks-empty').hidden = rows.length > 0;
  const unreachable = list.unreachableSites ?? [];
  $('unreachable').hidden = unreachable.length === 0;
  $('unreachable').textContent = unreachable.length ? `Not answering: ${unreachable.join(', ')} (their disks are not listed).` : '';
}

// ---- relocations, each fed by its own progress stream ----

/** disk -> { info, progress, state: running|done|ended|problem, outcome, source, doneAt } */
const relocations = new Map();

/** Adds a listed relocation; <asked> is when the list was asked for (a list older than a row's end is stale). */
function track(info, asked) {
  let r = relocations.get(info.disk);
  if (r && r.state !== 'running') {
    if (asked <= r.doneAt) return;
    // The same disk relocating again.
    r.source?.close();
    relocations.delete(info.disk);
    r = undefined;
  }
  if (!r) {
    r = { info, progress: null, state: 'running', outcome: '', source: null, doneAt: 0 };
    relocations.set(info.disk, r);
    follow(r);
  } else {
    r.info = info;
  }
}

function follow(r) {
  const source = new EventSource(`${API}/relocations/${encodeURIComponent(r.info.disk)}/progress`);
  r.source = source;
  source.addEventListener('progress', (e) => {
    const sample = JSON.parse(e.data);
    r.info = sample.info;
    if (sample.progress) r.progress = sample.progress;
    renderRelocations();
  });
  source.addEventListener('done', (e) => {
    source.close();
    const disk = JSON.parse(e.data).disk;
    r.doneAt = Date.now();
    if (!disk) {
      r.state = 'ended';
      r.outcome = 'deleted';
    } else if (disk.owner === r.info.toSite) {
      r.state = 'done';
      r.outcome = `done: ${disk.owner} owns it at epoch ${disk.epoch}`;
      r.info = { ...r.info, epoch: disk.epoch };
    } else {
      r.state = 'ended';
      r.outcome = `ended: ${disk.owner} owns it at epoch ${disk.epoch}`;
    }
    renderRelocations();
    scheduleRefresh();
  });
  source.addEventListener('problem', (e) => {
    source.close();
    r.state = 'problem';
    r.doneAt = Date.now();
    r.outcome = JSON.parse(e.data).detail ?? 'the progress stream failed';
    renderRelocations();
  });
}

function renderRelocations() {
  const now = Date.now();
  for (const [disk, r] of relocations) {
    if (r.state !== 'running' && now - r.doneAt > KEEP_DONE_MS) relocations.delete(disk);
  }
  const rows = [...relocations.values()].sort((a, b) => a.info.disk.localeCompare(b.info.disk)).map((r) => {
    const p = r.progress;
    const pct = r.state === 'done' ? 100 : p ? percent(p.localBytes, p.totalBytes) : 0;
    const remaining = p ? p.totalBytes - p.localBytes : 0;
    const eta = r.state !== 'running' ? '–' : p && p.rateBps > 0 ? duration(remaining / p.rateBps) : '–';
    const epoch = r.state === 'running' ? `${r.info.epoch} → ${r.info.epoch + 1}` : String(r.info.epoch);
    // A queued relocation (the admission queue) shows its place in line.
    const phase = r.state !== 'running' ? r.outcome : r.info.phase === 'queued' ? `queued #${r.info.position}` : r.info.phase;
    return el('tr', { 'data-disk': r.info.disk, 'data-state': r.state, 'data-to': r.info.toSite },
      el('td', { class: 'name' }, r.info.disk),
      el('td', {}, `${r.info.fromSite} → ${r.info.toSite}`),
      el('td', {}, epoch),
      el('td', { class: 'phase' }, el('span', { class: 'pill', 'data-state': r.state === 'running' ? r.info.phase : r.state }, phase)),
      el('td', { class: 'wide' }, bar(pct, `${r.info.disk}: copied`)),
      el('td', { class: 'num', 'data-field': 'rate' }, r.state === 'running' && p ? rate(p.rateBps) : '–'),
      el('td', { class: 'num', 'data-field': 'eta' }, eta),
      el('td', { class: 'num', 'data-field': 'misses' }, p ? p.onDemandFetches : '–'));
  });
  $('relocations').tBodies[0].replaceChildren(...rows);
  $('relocations-empty').hidden = rows.length > 0;
}

// ---- events ----

/** seq -> event: the newest shown, plus those arrived since the last render (a replay brings the whole kept history). */
const events = new Map();
let eventsPending = null;

function eventItem(e) {
  const details = [];
  if (e.phase) details.push(`phase ${e.phase}`);
  if (e.trigger) details.push(`trigger ${e.trigger}`);
  if (e.durationSeconds !== undefined && e.durationSeconds !== null) details.push(`in ${e.durationSeconds.toFixed(1)} s`);
  if (e.fetchedBytes !== undefined && e.fetchedBytes !== null) details.push(`fetched ${bytes(e.fetchedBytes)}`);
  if (e.misses !== undefined && e.misses !== null) details.push(`${e.misses} misses`);
  if (e.detail) details.push(e.detail);
  const time = new Date(e.time);
  return el('li', { 'data-seq': e.seq, 'data-kind': e.kind, 'data-disk': e.disk },
    el('time', { datetime: e.time, class: 'muted' }, isNaN(time) ? '' : time.toLocaleTimeString([], { hour12: false })),
    el('span', { class: 'pill', 'data-state': e.kind }, e.kind),
    el('span', { class: 'name' }, e.disk),
    el('span', {}, `${e.fromSite} → ${e.toSite}`),
    details.length ? el('span', { class: 'muted small' }, details.join(' · ')) : null);
}

/** Keyed by seq, so a reconnect's replay shows nothing twice; rendered once per burst, newest first. */
function addEvent(e) {
  events.set(e.seq, e);
  eventsPending ??= setTimeout(renderEvents, 100);
}

function renderEvents() {
  eventsPending = null;
  const newest = [...events.values()].sort((a, b) => b.seq - a.seq).slice(0, MAX_EVENTS);
  events.clear();
  for (const e of newest) events.set(e.seq, e);
  $('events').replaceChildren(...newest.map(eventItem));
  $('events-empty').hidden = newest.length > 0;
}

async function followEvents() {
  // The newest few first (not the node's whole kept history), then live from the last of them with no gap; a
  // reconnect replays from there too (the URL's `after` wins over Last-Event-ID), and keying by seq drops repeats.
  let after = 0;
  for (let attempt = 0; ; attempt++) {
    try {
      const recent = await getJson(`/events?newest=true&limit=${MAX_EVENTS}`);
      for (const e of recent.events) addEvent(e);
      if (recent.events.length) after = recent.events[recent.events.length - 1].seq;
      break;
    } catch {
      if (attempt >= 4) break; // the stream below replays from the first then: nothing is missed
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
  const source = new EventSource(`${API}/events?follow=true&after=${after}`);
  // The node sends the stream's headers with its first event, so a quiet stream stays "connecting":
  // live means the API answers and the stream has not failed.
  source.onopen = () => { streamFailed = false; setLive('live', 'live'); };
  source.onerror = () => { streamFailed = true; setLive('reconnecting', 'reconnecting…'); };
  source.addEventListener('relocation', (e) => {
    addEvent(JSON.parse(e.data));
    scheduleRefresh();
  });
}

let streamFailed = false;

function setLive(state, text) {
  $('live').dataset.state = state;
  $('live').textContent = text;
}

// ---- refresh ----

let refreshing = null, pending = null;

async function refresh() {
  if (refreshing) return refreshing; // one at a time; a request during one runs after it (scheduleRefresh)
  refreshing = (async () => {
    const asked = Date.now();
    const [cluster, disks, list] = await Promise.allSettled([getJson('/cluster'), getJson('/disks'), getJson('/relocations')]);
    if (cluster.status === 'fulfilled') renderCluster(cluster.value);
    if (disks.status === 'fulfilled') renderDisks(disks.value);
    if (list.status === 'fulfilled') for (const info of list.value) track(info, asked);
    renderRelocations();
    const failed = [cluster, disks, list].filter((s) => s.status === 'rejected');
    $('updated').textContent = failed.length
      ? `not answering: ${failed.map((f) => f.reason.message).join('; ')}`
      : `updated ${new Date().toLocaleTimeString([], { hour12: false })}`;
    $('updated').classList.toggle('warning', failed.length > 0);
    if (failed.length === 3) setLive('offline', 'node not answering');
    else if (!streamFailed) setLive('live', 'live');
  })().finally(() => { refreshing = null; });
  return refreshing;
}

/** Refreshes soon, once for a burst of events. */
function scheduleRefresh() {
  if (pending) return;
  pending = setTimeout(async () => {
    await refreshing;
    pending = null;
    refresh();
  }, 250);
}

/** Refreshes on a timer, sooner while a relocation runs. */
async function poll() {
  await refresh();
  const busy = [...relocations.values()].some((r) => r.state === 'running');
  setTimeout(poll, busy ? BUSY_REFRESH_MS : REFRESH_MS);
}

followEvents();
poll();
