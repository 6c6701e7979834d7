// LAN Guard inbox: the owner's view of the agents' events, like a mail client's spam view.
//
// A plain web component (no build step, no dependencies) that Home Assistant loads as a
// sidebar panel. It talks only through Home Assistant's websocket (hass.callWS and one
// subscription); its texts are the integration's own translations (common.panel_*).
// Everything that came from the network (host names, vendors, samples, ...) is put on the
// page as text nodes, never as markup.

const COMMON = "component.lan_guard.common.";
const KIND = "component.lan_guard.entity.event.activity.state_attributes.event_type.state.";
const PAGE = 50; // the server's page size limit is 100
const PORTS_SHOWN = 20;
const EVENT_ID = /^[0-9a-f]{32}$/;

const STYLE = `
  :host { display: block; min-height: 100%; background: var(--primary-background-color);
    color: var(--primary-text-color); font-family: var(--paper-font-body1_-_font-family, sans-serif); }
  .toolbar { display: flex; align-items: center; height: var(--header-height, 56px); padding: 0 12px;
    background: var(--app-header-background-color, var(--primary-color));
    color: var(--app-header-text-color, white); font-size: 20px; gap: 8px; }
  main { padding: 16px; max-width: 1400px; margin: 0 auto; }
  .intro { color: var(--secondary-text-color); margin: 0 0 16px; }
  .agents { display: grid; gap: 12px; grid-template-columns: repeat(auto-fill, minmax(320px, 1fr));
    margin-bottom: 16px; }
  .card { background: var(--card-background-color, white); border-radius: 12px; padding: 12px 16px;
    box-shadow: var(--ha-card-box-shadow, none); border: 1px solid var(--divider-color, #ddd); }
  .card h2 { font-size: 16px; margin: 0 0 6px; display: flex; gap: 8px; align-items: center; }
  .muted { color: var(--secondary-text-color); font-size: 13px; }
  .evac { margin-top: 8px; padding: 8px; border-radius: 8px; }
  .evac.on { background: rgba(219, 68, 55, 0.12); }
  .filters { display: flex; flex-wrap: wrap; gap: 12px; align-items: center; margin-bottom: 12px; }
  .filters label { display: flex; gap: 6px; align-items: center; font-size: 14px; }
  select, button { font: inherit; }
  select { padding: 4px 6px; border-radius: 6px; border: 1px solid var(--divider-color, #ccc);
    background: var(--card-background-color, white); color: var(--primary-text-color); }
  button { border: 1px solid var(--primary-color); background: transparent; color: var(--primary-color);
    border-radius: 16px; padding: 4px 12px; cursor: pointer; }
  button[aria-pressed="true"] { background: var(--primary-color); color: var(--text-primary-color, white); }
  button.alarm { border-color: var(--error-color, #db4437); color: var(--error-color, #db4437); }
  button.alarm[aria-pressed="true"] { background: var(--error-color, #db4437); color: white; }
  button:disabled { opacity: 0.5; cursor: default; }
  table { width: 100%; border-collapse: collapse; background: var(--card-background-color, white);
    border-radius: 12px; overflow: hidden; border: 1px solid var(--divider-color, #ddd); }
  th, td { text-align: left; vertical-align: top; padding: 8px; border-bottom: 1px solid var(--divider-color, #eee);
    font-size: 14px; }
  th { font-weight: 500; color: var(--secondary-text-color); }
  tr.unanswered td:first-child { border-left: 4px solid var(--primary-color); }
  tr.focus { outline: 2px solid var(--accent-color, orange); outline-offset: -2px; }
  .verdict-alarm { color: var(--error-color, #db4437); font-weight: 500; }
  .verdict-unsure { color: var(--warning-color, #ffa600); font-weight: 500; }
  .verdict-normal { color: var(--success-color, #43a047); font-weight: 500; }
  code { font-family: var(--code-font-family, monospace); font-size: 12px; word-break: break-all; }
  .id { font-family: var(--code-font-family, monospace); font-size: 12px; }
  .actions { display: flex; gap: 6px; flex-wrap: wrap; }
  .error { color: var(--error-color, #db4437); margin: 8px 0; }
  .more { margin: 12px 0; text-align: center; }
`;

/** An element with attributes and children; strings become text nodes (never markup). */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

class LanGuardInbox extends HTMLElement {
  constructor() {
    super();
    this.attachShadow({ mode: "open" });
    this._texts = {};
    this._agents = [];
    this._events = [];
    this._total = 0;
    this._unanswered = 0;
    this._filters = { entry: "", status: "first", verdict: "" };
    this._error = "";
    this._busy = false;
    this._unsubscribe = null;
    this._started = false;
    this._narrow = false;
    const focus = new URLSearchParams(window.location.search).get("event");
    this._focus = focus && EVENT_ID.test(focus) ? focus : null;
  }

  set hass(hass) {
    this._hass = hass;
    if (this._menu) this._menu.hass = hass;
    if (!this._started && this.isConnected) this._start();
  }

  set narrow(narrow) {
    this._narrow = narrow;
    if (this._menu) this._menu.narrow = narrow;
  }

  set panel(_panel) {}

  set route(_route) {}

  connectedCallback() {
    if (!this._started && this._hass) this._start();
  }

  disconnectedCallback() {
    if (this._unsubscribe) this._unsubscribe.then((unsubscribe) => unsubscribe()).catch(() => {});
    this._unsubscribe = null;
    this._started = false;
  }

  async _start() {
    this._started = true;
    try {
      await this._load();
    } catch (err) {
      this._error = this._t("panel_error", { error: err?.message ?? String(err) });
      this._render();
    }
  }

  async _load() {
    const language = this._hass.language;
    const [common, entity] = await Promise.all(
      ["common", "entity"].map((category) =>
        this._hass.callWS({
          type: "frontend/get_translations",
          language,
          category,
          integration: ["lan_guard"],
        }),
      ),
    );
    this._texts = { ...common.resources, ...entity.resources };
    this._unsubscribe = this._hass.connection.subscribeMessage(() => this._refresh(), {
      type: "lan_guard/inbox/subscribe",
    });
    await this._refresh();
  }

  /** The translated text of common.<key>, placeholders filled in (as text). */
  _t(key, values = {}) {
    const text = this._texts[COMMON + key] ?? key;
    return text.replace(/\{(\w+)\}/g, (whole, name) => (name in values ? String(values[name]) : whole));
  }

  _kind(kind) {
    return this._texts[KIND + kind] ?? kind;
  }

  _time(iso) {
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return String(iso);
    const locale = this._hass.locale?.language ?? this._hass.language;
    return date.toLocaleString(locale, { dateStyle: "medium", timeStyle: "medium" });
  }

  async _refresh() {
    try {
      const wanted = Math.max(PAGE, this._events.length);
      const [agents, page] = await Promise.all([
        this._hass.callWS({ type: "lan_guard/inbox/agents" }),
        this._list(0, Math.min(wanted, 100)),
      ]);
      this._agents = agents.agents;
      let events = page.events;
      while (events.length < Math.min(wanted, page.total)) {
        const next = await this._list(events.length, 100);
        if (!next.events.length) break;
        events = events.concat(next.events);
      }
      this._events = events;
      this._total = page.total;
      this._unanswered = page.unlabelled;
      this._error = "";
    } catch (err) {
      this._error = this._t("panel_error", { error: err?.message ?? String(err) });
    }
    this._render();
  }

  _list(offset, limit) {
    const filters = this._filters;
    const message = {
      type: "lan_guard/events/list",
      offset,
      limit,
      status: filters.status === "first" ? "all" : filters.status,
      unlabelled_first: filters.status === "first",
    };
    if (filters.entry) message.config_entry_id = filters.entry;
    if (filters.verdict) message.verdict = filters.verdict;
    return this._hass.callWS(message);
  }

  async _more() {
    try {
      const page = await this._list(this._events.length, PAGE);
      this._events = this._events.concat(page.events);
      this._total = page.total;
    } catch (err) {
      this._error = this._t("panel_error", { error: err?.message ?? String(err) });
    }
    this._render();
  }

  /** Run an owner's action (label, restore, keep), then show the new state. */
  async _act(message) {
    if (this._busy) return;
    this._busy = true;
    this._render();
    try {
      await this._hass.callWS(message);
      this._error = "";
    } catch (err) {
      this._error = this._t("panel_error", { error: err?.message ?? String(err) });
    }
    this._busy = false;
    await this._refresh();
  }

  // ----------------------------------------------------------------- rendering

  _render() {
    // Rebuild only when something shown changed: a button the owner is about to press
    // stays in place while unrelated updates (an agent's counters) come in.
    const admin = Boolean(this._hass.user?.is_admin);
    const shown = JSON.stringify([
      this._agents, this._events, this._total, this._unanswered, this._filters,
      this._error, this._busy, admin,
    ]);
    if (shown === this._shown) return;
    this._shown = shown;
    const root = this.shadowRoot;
    root.replaceChildren();
    root.append(el("style", {}, STYLE));
    this._menu = document.createElement("ha-menu-button");
    this._menu.hass = this._hass;
    this._menu.narrow = this._narrow;
    root.append(el("div", { class: "toolbar" }, this._menu, el("span", {}, this._t("panel_title"))));
    root.append(
      el(
        "main",
        {},
        el("p", { class: "intro" }, this._t("panel_intro")),
        admin ? null : el("p", { class: "muted", "data-role": "not-admin" }, this._t("panel_not_admin")),
        this._error ? el("div", { class: "error", role: "alert" }, this._error) : null,
        el("div", { class: "agents" }, this._agents.map((agent) => this._agentCard(agent, admin))),
        this._filterBar(),
        this._table(admin),
        this._events.length < this._total
          ? el("div", { class: "more" }, el("button", { onclick: () => this._more() }, this._t("panel_more")))
          : null,
      ),
    );
    if (this._focus) {
      const row = root.querySelector(`tr[data-event-id="${this._focus}"]`);
      if (row) {
        row.scrollIntoView({ block: "center" });
        this._focus = null; // once: later refreshes keep the owner's scroll position
      }
    }
  }

  _agentCard(agent, admin) {
    const stats = agent.classifier;
    const accuracy =
      stats && stats.accuracy !== null && stats.accuracy !== undefined
        ? `${(100 * stats.accuracy).toFixed(1)} %`
        : this._t("panel_accuracy_none");
    return el(
      "div",
      { class: "card", "data-agent": agent.config_entry_id },
      el(
        "h2",
        {},
        agent.title,
        el("span", { class: "muted" }, agent.online ? this._t("panel_online") : this._t("panel_offline")),
      ),
      stats
        ? el(
            "div",
            {},
            el("div", { "data-role": "accuracy" }, this._t("panel_accuracy", { accuracy })),
            el(
              "div",
              { "data-role": "labels", "data-labels": stats.labels },
              this._t("panel_labels", {
                labels: stats.labels,
                normal: stats.labels_normal,
                alarm: stats.labels_alarm,
              }),
            ),
          )
        : null,
      this._evacuation(agent, admin),
    );
  }

  _evacuation(agent, admin) {
    const evac = agent.evacuation;
    if (!evac) return null;
    const phase = evac.phase;
    if (phase === "idle") {
      return el("div", { class: "evac", "data-role": "evacuation", "data-phase": phase }, this._t("panel_evac_idle"));
    }
    const name = (entityId) => this._hass.states[entityId]?.attributes?.friendly_name ?? entityId;
    const who = (c) => [c.hostname, c.ip, c.mac].filter(Boolean).join(" / ");
    const status =
      phase === "culprit_left"
        ? this._t("panel_evac_culprit_left")
        : this._t("panel_evac_active", { since: evac.started_at ? this._time(evac.started_at) : "-" });
    const entry = agent.config_entry_id;
    return el(
      "div",
      { class: "evac on", "data-role": "evacuation", "data-phase": phase },
      el("strong", {}, status),
      evac.hold ? el("div", {}, this._t("panel_evac_hold")) : null,
      el(
        "div",
        { class: "muted" },
        this._t("panel_evac_isolated", { appliances: evac.isolated.map(name).join(", ") || this._t("none") }),
      ),
      el(
        "div",
        { class: "muted" },
        this._t("panel_evac_culprits", { culprits: evac.culprits.map(who).join(", ") || this._t("none") }),
      ),
      el(
        "div",
        { class: "actions" },
        el(
          "button",
          {
            "data-action": "restore",
            disabled: !admin || this._busy,
            onclick: () => this._act({ type: "lan_guard/evacuation/restore", config_entry_id: entry }),
          },
          this._t("action_restore"),
        ),
        phase === "active" && !evac.hold
          ? el(
              "button",
              {
                class: "alarm",
                "data-action": "keep",
                disabled: !admin || this._busy,
                onclick: () => this._act({ type: "lan_guard/evacuation/keep", config_entry_id: entry }),
              },
              this._t("action_keep"),
            )
          : null,
      ),
    );
  }

  _filterBar() {
    const filters = this._filters;
    const select = (name, options, value) =>
      el(
        "select",
        {
          "data-filter": name,
          onchange: (ev) => {
            this._filters = { ...this._filters, [name]: ev.target.value };
            this._events = [];
            this._refresh();
          },
        },
        options.map(([optionValue, text]) =>
          el("option", { value: optionValue, selected: optionValue === value }, text),
        ),
      );
    return el(
      "div",
      { class: "filters" },
      el(
        "label",
        {},
        this._t("panel_agent"),
        select(
          "entry",
          [["", this._t("panel_all_agents")], ...this._agents.map((a) => [a.config_entry_id, a.title])],
          filters.entry,
        ),
      ),
      el(
        "label",
        {},
        this._t("panel_show"),
        select(
          "status",
          [
            ["first", this._t("panel_unanswered_first")],
            ["unlabelled", this._t("panel_unanswered_only")],
            ["labelled", this._t("panel_answered_only")],
          ],
          filters.status,
        ),
      ),
      el(
        "label",
        {},
        this._t("panel_proposal_filter"),
        select(
          "verdict",
          [
            ["", this._t("panel_any_proposal")],
            ["alarm", this._t("verdict_alarm")],
            ["unsure", this._t("verdict_unsure")],
            ["normal", this._t("verdict_normal")],
          ],
          filters.verdict,
        ),
      ),
      el("span", { class: "muted", "data-role": "unanswered" }, this._t("panel_unanswered", { count: this._unanswered })),
    );
  }

  _table(admin) {
    if (!this._events.length) return el("p", { class: "muted", "data-role": "empty" }, this._t("panel_empty"));
    const head = ["event", "time", "culprit", "details", "proposal", "judgement"].map((col) =>
      el("th", {}, this._t(`panel_col_${col}`)),
    );
    return el(
      "table",
      {},
      el("thead", {}, el("tr", {}, head)),
      el("tbody", {}, this._events.map((event) => this._row(event, admin))),
    );
  }

  _row(event, admin) {
    const culprit = event.culprit;
    const unknown = this._t("unknown");
    return el(
      "tr",
      {
        "data-event-id": event.event_id,
        class: [event.label ? "" : "unanswered", event.event_id === this._focus ? "focus" : ""].join(" ").trim(),
      },
      el("td", {}, el("span", { class: "id", title: event.event_id }, event.event_id.slice(0, 8)), el("div", { class: "muted" }, event.agent_id)),
      el("td", {}, this._time(event.detected_at)),
      el(
        "td",
        {},
        el("strong", {}, culprit.hostname || culprit.ip || culprit.mac),
        el("div", { class: "muted" }, `${this._t("field_ip")}: ${culprit.ip || unknown}`),
        el("div", { class: "muted" }, `${this._t("field_mac")}: ${culprit.mac}`),
        el("div", { class: "muted" }, `${this._t("field_vendor")}: ${culprit.vendor || unknown}`),
      ),
      el("td", {}, this._details(event)),
      el("td", {}, this._proposal(event.proposal)),
      el("td", {}, this._judgement(event, admin)),
    );
  }

  _details(event) {
    const ev = event.evidence;
    const lines = [el("strong", {}, `${this._kind(event.kind)}, ${this._t("panel_level", { level: event.level })}`)];
    const line = (name, value) => lines.push(el("div", { class: "muted" }, `${name}: ${value}`));
    if (Array.isArray(ev.ports) && ev.ports.length) {
      // A SYN scan's target_count is the number of ports probed; the list may be a sample.
      const total = Math.max(ev.ports.length, event.kind === "syn_scan" ? (ev.target_count ?? 0) : 0);
      let ports = ev.ports.slice(0, PORTS_SHOWN).join(", ");
      if (total > PORTS_SHOWN) ports += ` ${this._t("panel_and_more", { count: total - PORTS_SHOWN })}`;
      line(this._t("field_ports"), ports);
    }
    if (ev.port !== undefined) line(this._t("panel_port"), ev.port);
    if (event.kind === "arp_scan" && ev.target_count !== undefined) line(this._t("field_targets"), ev.target_count);
    if (typeof ev.rate === "number") line(this._t("panel_rate"), this._t("panel_rate_value", { rate: ev.rate.toFixed(1) }));
    if (typeof ev.sample === "string") {
      lines.push(el("div", { class: "muted" }, `${this._t("field_sample")}: `, el("code", {}, ev.sample)));
    }
    return lines;
  }

  _proposal(proposal) {
    if (!proposal || !proposal.verdict) return "-";
    const probability =
      typeof proposal.probability === "number" ? ` (${Math.round(100 * proposal.probability)} %)` : "";
    const decided = proposal.decided_by === "model" ? this._t("panel_decided_model") : this._t("panel_decided_prior");
    return [
      el("span", { class: `verdict-${proposal.verdict}`, "data-role": "proposal" }, `${this._t(`verdict_${proposal.verdict}`)}${probability}`),
      el("div", { class: "muted" }, decided),
    ];
  }

  _judgement(event, admin) {
    const button = (label, extraClass) =>
      el(
        "button",
        {
          class: extraClass,
          "data-action": `label-${label}`,
          "aria-pressed": event.label === label ? "true" : "false",
          disabled: !admin || this._busy,
          onclick: () => this._act({ type: "lan_guard/label", event_id: event.event_id, verdict: label }),
        },
        this._t(`action_${label}`),
      );
    return el("div", { class: "actions" }, button("normal", ""), button("alarm", "alarm"));
  }
}

if (!customElements.get("lan-guard-inbox")) customElements.define("lan-guard-inbox", LanGuardInbox);
