/** `portfolio events list|retry`: the event queue seen from a terminal. */
import type { Command } from 'commander';
import type { DeliveryState } from '../core/events.js';
import { configFromOptions, withSettings } from './config.js';
import { withEngine } from './flags.js';

export function registerEventCommands(program: Command): void {
  const events = program.command('events').description('the event queue: what waits, what failed, and sending failed events again (docs/events.md)');
  withSettings(
    events
      .command('list')
      .description('list queued events, oldest first (default: pending and failed)')
      .option('--failed', 'only events parked after their last attempt failed')
      .option('--pending', 'only events waiting to be sent')
      .option('--delivered', 'only delivered events (kept for --events-retention)')
      .option('--sink <name>', 'only this sink')
      .option('--limit <n>', 'at most this many', '100')
      .option('--json', 'one JSON object per line'),
    'engine',
  ).action(async (flags: { failed?: boolean; pending?: boolean; delivered?: boolean; sink?: string; limit: string; json?: boolean }, command: Command) => {
    const limit = Number(flags.limit);
    if (!Number.isInteger(limit) || limit < 1) throw new Error(`invalid --limit ${flags.limit}`);
    const states: DeliveryState[] = flags.failed || flags.pending || flags.delivered
      ? [...(flags.pending ? ['pending' as const] : []), ...(flags.failed ? ['failed' as const] : []), ...(flags.delivered ? ['delivered' as const] : [])]
      : ['pending', 'failed'];
    await withEngine(configFromOptions(command.opts()).config, async ({ registry }) => {
      const rows = await registry.listEvents({ states, sink: flags.sink, limit });
      for (const row of rows) {
        if (flags.json) {
          console.log(JSON.stringify(row));
          continue;
        }
        const { event } = row;
        const what = event.target.tag ? `${event.target.repository}:${event.target.tag}` : event.target.digest ? `${event.target.repository}@${event.target.digest}` : event.target.repository;
        const error = row.lastError ? `  last error: ${row.lastError}` : '';
        console.log(`${event.id}  ${row.sink}  ${row.state}  ${event.action} ${what}  ${event.timestamp}  attempts ${row.attempts}${error}`);
      }
      if (!flags.json && rows.length === 0) console.log('no events');
    }, false);
  });
  withSettings(
    events
      .command('retry')
      .description('queue parked (failed) events again: all of them, one sink’s (--sink), or the ids given')
      .argument('[ids...]', 'event ids (from `events list --failed`)')
      .option('--sink <name>', 'only this sink'),
    'engine',
  ).action(async (ids: string[], flags: { sink?: string }, command: Command) => {
    const n = await withEngine(configFromOptions(command.opts()).config, ({ registry }) => registry.retryEvents({ sink: flags.sink, ...(ids.length ? { ids } : {}) }), false);
    console.log(`${n} event deliver${n === 1 ? 'y' : 'ies'} queued again`);
  });
}
