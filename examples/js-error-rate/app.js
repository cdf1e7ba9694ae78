// The seeds' "High Error Rate" procedure: count the error lines of the last hour in a log, name
// the top error kinds, and tell ops when the count is over a threshold. The host greps the file
// natively; the playbook only looks at the matching lines' timestamps and words.
// The Rust twin is examples/rust-error-rate: same parameters, same outcome.
// Build: npm ci && npm run build (or ./build.sh OUT.wasm)

import * as rb from './runbook.js';

// Matches the host's grep returns at most; the count covers every match.
const MAX_MATCHES = 10000;
const SAMPLE_LINES = 5;

function describePlaybook() {
  return rb.description(
    'error-rate',
    'High Error Rate: error lines in the last hour of a log, top error kinds, ops told over a threshold',
    {
      params: [
        rb.param('path', 'The log file; lines start with an RFC 3339 timestamp', { required: true }),
        rb.param('window-secs', 'How far back to count', { defaultValue: '3600' }),
        rb.param('threshold', 'Notify when more error lines than this', { defaultValue: '50' }),
        rb.param('pattern', 'Regex of an error line (case-insensitive)',
          { defaultValue: 'error|fatal|panic|exception|traceback' }),
        rb.param('top', 'How many error kinds to name', { defaultValue: '5' }),
        rb.param('channel', 'Notification channel', { defaultValue: 'ops' }),
      ],
      wants: ['fs-read', 'notify'],
    },
  );
}

/** Whole non-negative numbers only, like the Rust twin's u64 parameters. */
function count(incident, name, fallback) {
  const raw = incident.param(name);
  if (raw === undefined || raw.trim() === '') return fallback;
  if (!/^\d+$/.test(raw.trim())) {
    throw new rb.Invalid(`parameter ${name}=${JSON.stringify(raw)}: invalid digit found in string`);
  }
  return Number(raw.trim());
}

function runPlaybook(incident) {
  const path = incident.param('path') || '';
  const windowSecs = count(incident, 'window-secs', 3600);
  const threshold = count(incident, 'threshold', 50);
  const top = count(incident, 'top', 5);
  const pattern = incident.param('pattern') || 'error';
  const channel = incident.param('channel') || 'ops';

  rb.report.step('grep', 'started', `${pattern} in ${path}`);
  const found = rb.fs.grep(path, pattern, { caseInsensitive: true, maxMatches: MAX_MATCHES });
  rb.report.step('grep', 'ok', `${found.count} matches in ${found.linesScanned} lines`);
  if (found.count > BigInt(found.matches.length)) {
    rb.warn(`only the first ${found.matches.length} matches were looked at`);
  }

  const now = Math.floor(Date.now() / 1000);
  const recent = [];
  let undated = 0;
  for (const m of found.matches) {
    const at = timestamp(m.line);
    if (at === undefined) undated += 1;
    else if (now - at <= windowSecs) recent.push(m.line);
  }
  const kinds = new Map();
  for (const line of recent) {
    const kind = errorKind(line);
    kinds.set(kind, (kinds.get(kind) || 0) + 1);
  }
  const ranked = [...kinds.entries()]
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .slice(0, top);
  const kindsText = ranked.map(([kind, n]) => `${kind} ×${n}`).join(', ');

  const n = recent.length;
  const minutes = Math.floor(windowSecs / 60);
  const over = n > threshold;
  rb.report.step('window', over ? 'warning' : 'ok',
    `${n} in the last ${minutes} min, ${undated} undated; top: ${kindsText}`);

  const summary = `${n} error lines in the last ${minutes} min of ${path} (threshold ${threshold})`
    + (kindsText ? `; top: ${kindsText}` : '');
  if (!over) return rb.Outcome.noAction(summary);

  const body = [`Top error kinds: ${kindsText}`, 'Latest:',
    ...recent.slice(-SAMPLE_LINES).map((l) => `  ${l}`)];
  const message = rb.message(`High error rate: ${n} errors in ${minutes} min in ${path}`, {
    body: body.join('\n'),
    severity: 'warning',
    fields: [['run', incident.runId], ['threshold', String(threshold)]],
  });
  let action;
  try {
    rb.notify.send(channel, message);
    action = incident.dryRun ? `would notify ${channel}` : `notified ${channel}`;
  } catch (e) {
    if (!(e instanceof rb.CapabilityError)) throw e;
    action = `notification to ${channel} failed (${e.kind}: ${e.detail})`;
  }
  return rb.Outcome.escalated(summary).action(action);
}

/** The word naming the error: the first one ending in Error or Exception, else "other". */
function errorKind(line) {
  const words = line.split(/\s+/).filter(Boolean).slice(1)
    .map((w) => w.replace(/^[^A-Za-z0-9_.]+|[^A-Za-z0-9_.]+$/g, ''));
  return words.find((w) => (w.endsWith('Error') || w.endsWith('Exception')) && w.length > 5) || 'other';
}

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

/** Seconds since the epoch of a line's leading RFC 3339 timestamp; undefined when none. */
function timestamp(line) {
  const word = line.split(/\s+/).filter(Boolean)[0] || '';
  const m = RFC3339.exec(word);
  if (!m) return undefined;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number);
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) {
    return undefined;
  }
  let offset = 0;
  if (m[8] !== 'Z' && m[8] !== 'z') {
    const sign = m[8][0] === '-' ? -1 : 1;
    offset = sign * (Number(m[8].slice(1, 3)) * 3600 + Number(m[8].slice(4, 6)) * 60);
  }
  return Date.UTC(year, month - 1, day, hour, minute, second) / 1000 - offset;
}

// The world's two exports; a thrown CapabilityError becomes run's error kind.
export const { describe, run } = rb.playbook(describePlaybook, runPlaybook);
