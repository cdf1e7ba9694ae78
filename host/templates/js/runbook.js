// Write runbook-host playbooks in JavaScript: the same surface as the Rust SDK (runbook-sdk).
//
// A playbook module exports `describe()` and `run(incident)` made with
// `export const { describe, run } = playbook(describeFn, runFn)`. Capability calls throw a
// `CapabilityError` subclass named after the WIT error kind, so a playbook branches with
// `if (e instanceof Denied)`; throwing one from `run` ends the run with that error kind. Any
// other exception is a bug: the run fails with it as the reason.
//
// Shipped by `host new --lang js`; componentize-js resolves the runbook:host imports from ./wit.

import * as approvalWit from 'runbook:host/approval@0.4.0';
import * as dockerWit from 'runbook:host/docker@0.4.0';
import * as fsWit from 'runbook:host/fs-read@0.4.0';
import * as httpWit from 'runbook:host/http@0.4.0';
import * as notifyWit from 'runbook:host/notify@0.4.0';
import * as reportWit from 'runbook:host/report@0.4.0';

// --- errors: one class per WIT error kind ---------------------------------------------------

export class CapabilityError extends Error {
  constructor(kind, detail) {
    super(`${kind}: ${detail}`);
    this.kind = kind;
    this.detail = detail;
  }
}
export class Denied extends CapabilityError { constructor(d) { super('denied', d); } }
export class NotFound extends CapabilityError { constructor(d) { super('not-found', d); } }
export class Invalid extends CapabilityError { constructor(d) { super('invalid', d); } }
export class Unavailable extends CapabilityError { constructor(d) { super('unavailable', d); } }
export class Timeout extends CapabilityError { constructor(d) { super('timeout', d); } }
export class Failed extends CapabilityError { constructor(d) { super('failed', d); } }
/** An action budget refused a mutating call (WIT 0.4.0): nothing was done. `budget`, `key` (what
 *  it counts the call under) and `freesInSecs` (when a retry could go through) say which;
 *  escalate, naming them. `detail` is the host's one line. */
export class OverBudget extends CapabilityError {
  constructor(info) {
    super('over-budget', info.message);
    this.budget = info.budget;
    this.key = info.key;
    this.freesInSecs = Number(info.freesInSecs);
  }
  toWit() {
    return { budget: this.budget, key: this.key, freesInSecs: BigInt(this.freesInSecs), message: this.detail };
  }
}

const BY_KIND = {
  denied: Denied, 'not-found': NotFound, invalid: Invalid,
  unavailable: Unavailable, timeout: Timeout, failed: Failed, 'over-budget': OverBudget,
};

// The generated bindings throw an error whose `payload` is the WIT variant `{ tag, val }`.
function call(fn, ...args) {
  try {
    return fn(...args);
  } catch (e) {
    const payload = e && e.payload;
    if (payload && typeof payload.tag === 'string') {
      throw new (BY_KIND[payload.tag] || Failed)(payload.val ?? '');
    }
    throw e;
  }
}

const wrap = (module) => Object.fromEntries(
  Object.entries(module).map(([name, fn]) => [name, (...args) => call(fn, ...args)]),
);

// --- capabilities: the WIT functions in camelCase, throwing CapabilityError subclasses -------

/** listContainers(filter), inspect(name), logs(name, {tail, sinceSecs, timestamps}), start,
 *  stop(name, timeoutSecs), restart(name, timeoutSecs), pause, unpause, stats, diskUsage,
 *  prune(options), networkDisconnect(name, network, force) */
export const docker = wrap(dockerWit);
/** send({method, url, headers, body, timeoutMs}), probe(url, timeoutMs) */
export const http = wrap(httpWit);
/** read(path, offset, maxBytes), tail(path, lines), listDir, stat, usage, largest(path, depth,
 *  limit), find(path, options), grep(path, pattern, {caseInsensitive, maxMatches, lastLines}) */
export const fs = wrap(fsWit);
/** send(channel, message) — build the message with `message(...)` */
export const notify = wrap(notifyWit);
/** log(level, text), step(name, status, detail), attach(name, contentType, bytes) */
export const report = {
  log: reportWit.log,
  step: (name, status, detail = '') => reportWit.step(name, status, detail),
  attach: (name, contentType, data) => call(reportWit.attach, name, contentType,
    typeof data === 'string' ? new TextEncoder().encode(data) : data),
};
/** Ask people before acting: `ask(group, {title, body, actions, timeoutSecs})` waits and returns
 *  `{tag: 'approved', by}`, `{tag: 'rejected', by, reason}` or `{tag: 'expired'}` (nobody answered
 *  in time, or a dry run). Needs `approval = [group]` in the grants; the wait is off the deadline. */
export const approval = {
  ask: (group, { title, body = '', actions = [], timeoutSecs = 300 }) => {
    const answer = call(approvalWit.ask, group, { title, body, actions: actions.map(String), timeoutSecs });
    switch (answer.tag) {
      case 'approved': return { tag: 'approved', by: answer.val };
      case 'rejected': return { tag: 'rejected', by: answer.val.by, reason: answer.val.reason };
      default: return { tag: 'expired' };
    }
  },
};
export const info = (text) => reportWit.log('info', text);
export const warn = (text) => reportWit.log('warn', text);
export const error = (text) => reportWit.log('error', text);
export const debug = (text) => reportWit.log('debug', text);

// --- builders and the incident --------------------------------------------------------------

const pairs = (p) => (Array.isArray(p) ? p : Object.entries(p || {})).map(([k, v]) => [String(k), String(v)]);

export function param(name, description, { defaultValue, required = false } = {}) {
  return { name, description, default: defaultValue, required };
}

/** `wants`: 'docker' | 'http' | 'fs-read' | 'notify' | 'approval' */
export function description(name, summary, { version = '0.1.0', params = [], wants = [] } = {}) {
  return { name, summary, version, params, capabilities: wants };
}

/** severity: 'info' | 'warning' | 'error' | 'critical' */
export function message(title, { body = '', severity = 'info', fields = [] } = {}) {
  return { title, body, severity, fields: pairs(fields) };
}

export class Incident {
  constructor(raw) {
    this.raw = raw;
    this.runId = raw.runId;
    this.trigger = raw.trigger;
    this.params = raw.params;
    this.alert = raw.alert;
    this.dryRun = raw.dryRun;
  }

  param(name) {
    const found = this.params.find(([k]) => k === name);
    return found ? found[1] : undefined;
  }

  /** A parameter as a number; one that does not parse is `Invalid`. */
  paramNumber(name) {
    const raw = this.param(name);
    // An empty value means "not set", as a route template that found no label gives.
    if (raw === undefined || raw.trim() === '') return undefined;
    const value = Number(raw.trim());
    if (Number.isNaN(value)) {
      throw new Invalid(`parameter ${name}=${JSON.stringify(raw)}: not a number`);
    }
    return value;
  }

  paramList(name) {
    return (this.param(name) || '').split(',').map((s) => s.trim()).filter(Boolean);
  }

  alertLabel(name) {
    const found = this.alert && this.alert.labels.find(([k]) => k === name);
    return found ? found[1] : undefined;
  }
}

export class Outcome {
  constructor(status, summary, actions = []) {
    Object.assign(this, { status, summary, actions: [...actions] });
  }
  static resolved(summary) { return new Outcome('resolved', summary); }
  static mitigated(summary) { return new Outcome('mitigated', summary); }
  static escalated(summary) { return new Outcome('escalated', summary); }
  static noAction(summary) { return new Outcome('no-action', summary); }
  action(text) { this.actions.push(text); return this; }
}

/** The exports componentize-js wires to the world: `export const { describe, run } = playbook(d, r)`. */
export function playbook(describeFn, runFn) {
  return {
    describe: () => describeFn(),
    run: (incident) => {
      try {
        const outcome = runFn(new Incident(incident));
        return { status: outcome.status, summary: outcome.summary, actions: outcome.actions };
      } catch (e) {
        if (e instanceof CapabilityError) {
          // A thrown value with a `payload` becomes the `err` of run's result.
          const err = new Error(e.message);
          err.payload = { tag: e.kind, val: e instanceof OverBudget ? e.toWit() : e.detail };
          throw err;
        }
        throw e;
      }
    },
  };
}
