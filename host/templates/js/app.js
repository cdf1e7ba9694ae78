// {{name}}: how full is the filesystem holding a path? Tells ops when it is over a threshold.

import * as rb from './runbook.js';

function describePlaybook() {
  return rb.description('{{name}}', 'Checks how full the filesystem holding a path is', {
    params: [
      rb.param('path', 'A path on the filesystem to check', { defaultValue: '/tmp' }),
      rb.param('warn-percent', 'Notify ops above this use', { defaultValue: '90' }),
    ],
    wants: ['fs-read', 'notify'],
  });
}

function runPlaybook(incident) {
  const path = incident.param('path') || '/tmp';
  const warn = incident.paramNumber('warn-percent') ?? 90;
  rb.report.step('usage', 'started', path);
  let usage;
  try {
    usage = rb.fs.usage(path);
  } catch (e) {
    // Branch on the error kind: a missing grant is the operator's call, not a failure.
    if (!(e instanceof rb.Denied)) throw e;
    rb.report.step('usage', 'skipped', e.detail);
    return rb.Outcome.noAction(`fs-read of ${path} is not granted; grant it in host.toml`);
  }
  const used = usage.usedPercent.toFixed(0);
  rb.report.step('usage', 'ok', `${used}% used`);
  if (usage.usedPercent < warn) {
    return rb.Outcome.noAction(`${path} is ${used}% full`);
  }
  rb.notify.send('ops', rb.message(`${path} is ${used}% full`, {
    severity: 'warning', fields: { run: incident.runId },
  }));
  return rb.Outcome.escalated(`${path} is ${used}% full (over ${warn}%)`).action('notified ops');
}

// The world's two exports; a thrown CapabilityError becomes run's error kind.
export const { describe, run } = rb.playbook(describePlaybook, runPlaybook);
