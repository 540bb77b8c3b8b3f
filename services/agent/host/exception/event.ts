/**
 * The exceptionbeat message (reference collector.SendBulk): one GSE "basic alarm" document per extra
 * item, `{dataid, isdst, server, time, timezone, utctime, utctime2, value: [{event_desc, event_raw_id,
 * event_source_system, event_time, event_title, event_type, extra}]}`, keys sorted as Go marshals maps.
 */
import { formatDateTime, localOffsetMinutes, zoneHours } from '../goformat.ts';

/** Alarm types of `extra.type`. */
export const EXCEPTION_TYPE = { diskReadOnly: 3, diskSpace: 6, corefile: 7, outOfMemory: 9 } as const;

export type Extra = Record<string, unknown>;

/** Who raised the alarm (`extra.bizid`, `extra.cloudid`, `extra.host`; `server` of the message). */
export interface AlarmHost {
  readonly bizId: number;
  readonly cloudId: number;
  readonly ip: string;
}

/** An extra item with the host fields and type, keys sorted. */
export function extraOf(host: AlarmHost, type: number, fields: Extra): Extra {
  return sortKeys({ bizid: host.bizId, cloudid: host.cloudId, host: host.ip, type, ...fields });
}

export function sortKeys<T extends Record<string, unknown>>(o: T): T {
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(o).sort()) out[k] = o[k];
  return out as T;
}

/** Builds messages; `event_raw_id` counts bulks from 0 per task (the reference's process-wide counter). */
export class ExceptionMessages {
  #rawId = 0;

  /**
   * One message per extra; an extra's `event_time` (unix seconds as a string, set by the corefile
   * collector) is taken out and becomes the event's time. Quirk kept: `utctime` is the local event time
   * and `utctime2` the UTC one, which, once set by an item, stays for the rest of the bulk.
   */
  bulk(dataId: number, server: string, extras: readonly Extra[], nowMs: number): Record<string, unknown>[] {
    const rawId = this.#rawId++;
    const offset = localOffsetMinutes(nowMs);
    const now = formatDateTime(nowMs, offset);
    let utc = formatDateTime(nowMs, 0);
    const out: Record<string, unknown>[] = [];
    for (const item of extras) {
      const extra = { ...item };
      let eventTime = now;
      const t = extra['event_time'];
      if (typeof t === 'string' && t !== '' && /^[-+]?\d+$/.test(t)) {
        const ms = Number(t) * 1000;
        eventTime = formatDateTime(ms, localOffsetMinutes(ms));
        utc = formatDateTime(ms, 0);
      }
      delete extra['event_time'];
      out.push({
        dataid: dataId,
        isdst: 0,
        server,
        time: now,
        timezone: zoneHours(offset),
        utctime: eventTime,
        utctime2: utc,
        value: [
          {
            event_desc: '',
            event_raw_id: rawId,
            event_source_system: '',
            event_time: eventTime,
            event_title: '',
            event_type: 'gse_basic_alarm_type',
            extra: sortKeys(extra),
          },
        ],
      });
    }
    return out;
  }
}
