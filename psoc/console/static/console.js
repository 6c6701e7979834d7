// LAN Guard PSOC console: live updates over SSE. Strings from sites are only ever set with
// textContent (never innerHTML), so a host name cannot become markup.
"use strict";
(function () {
  const live = document.getElementById("live");
  if (!live || !window.EventSource) { return; }
  const queue = document.querySelector("#queue tbody");
  const events = document.getElementById("live-events");
  const title = document.getElementById("incident-title");

  function cell(row, text) {
    const td = document.createElement("td");
    td.textContent = text;
    row.appendChild(td);
    return td;
  }
  function when(ts) { return new Date(ts * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC"; }

  function incidentRow(i) {
    const tr = document.createElement("tr");
    tr.dataset.id = String(i.id);
    tr.dataset.level = String(i.level);
    tr.dataset.received = String(i.received_at);
    tr.className = "level" + i.level + " fresh";
    cell(tr, "L" + i.level).className = "level";
    cell(tr, i.site_id);
    const culprit = cell(tr, "");
    const a = document.createElement("a");
    a.href = "/incidents/" + encodeURIComponent(String(i.id));
    a.textContent = [i.mac, i.ip || "", i.vendor || "", i.hostname || ""].join(" ");
    culprit.appendChild(a);
    cell(tr, i.kinds.join(", "));
    cell(tr, String(i.events));
    cell(tr, i.verdict || "-");
    cell(tr, i.isolation || "-");
    cell(tr, i.status + (i.assignee ? " (" + i.assignee + ")" : ""));
    cell(tr, when(i.received_at));
    return tr;
  }

  function upsert(i) {
    const old = queue.querySelector('tr[data-id="' + String(Number(i.id)) + '"]');
    if (i.status === "closed") { if (old) { old.remove(); } return; }
    const row = incidentRow(i);
    if (old) { old.replaceWith(row); } else { queue.appendChild(row); }
  }

  function sortQueue() {
    const rows = Array.from(queue.rows);
    rows.sort((a, b) => (Number(b.dataset.level) - Number(a.dataset.level)) ||
                        (Number(a.dataset.received) - Number(b.dataset.received)));
    rows.forEach((r) => queue.appendChild(r));
  }

  const source = new EventSource("/feed");
  source.onopen = () => { live.classList.add("on"); };
  source.onerror = () => { live.classList.remove("on"); };
  source.onmessage = (msg) => {
    const data = JSON.parse(msg.data);
    if (queue) {
      data.incidents.forEach(upsert);
      sortQueue();
    }
    if (events) {
      data.events.forEach((e) => {
        const li = document.createElement("li");
        li.className = "level" + e.level;
        li.textContent = when(e.detected_at) + "  " + e.site_id + "/" + e.agent_id + "  L" + e.level +
          " " + e.kind + "  " + e.mac + " " + (e.ip || "");
        events.insertBefore(li, events.firstChild);
      });
      while (events.children.length > 50) { events.removeChild(events.lastChild); }
    }
    if (title) {
      const id = Number(title.dataset.id);
      const touched = data.incidents.some((i) => i.id === id) || data.actions.some((a) => a.incident === id);
      if (touched) { document.getElementById("incident-updated").hidden = false; }
    }
  };
})();
