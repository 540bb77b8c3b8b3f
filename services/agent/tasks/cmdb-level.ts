/**
 * Records expanded by CMDB level (reference `tasks.CmdbEventSender`, used by keyword §A5.11 and snmptrap
 * §A5.12): each target label of the task is resolved, through the host's topology from the hostid file
 * (`ctx.topology()`), to the topology links it targets, and a record is sent once per link, its
 * `dimension` holding the label's seven keys and the link:
 *
 * - a service-instance label (`bk_target_service_instance_id` set) or a dynamic-node label
 *   (`bk_target_topo_level` and `bk_target_topo_id` set): the links holding that level with that id —
 *   `set`, `module`, `biz` are looked up as `bk_<level>_id`, custom levels by their object id; an id that is
 *   not an integer matches nothing (reference `GetInfoByLevelID`);
 * - a static-IP label (`bk_target_ip` set): every link of the host (reference `GetInfoByCloudIdAndIp`,
 *   which compares the label's IP and cloud id with the host's but only logs a mismatch);
 * - any other label: nothing.
 *
 * A link becomes `bk_target_ip` and `bk_target_cloud_id` (the hostid file's inner IP and cloud id, over the
 * label's own) and one key per level, as decimal text: names starting with `bk_` as they are, others as
 * `bk_<name>_id` (a custom level `zone` → `bk_zone_id`). When nothing resolves — no labels, no topology in
 * use (no hostid file, an unparsable one, `ignore_cmdb_level`), no link matching — the record is sent once,
 * as it is, without label keys (reference: "the original message is reported").
 *
 * Difference: labels are taken once each (distinct by their seven keys, as `configs.Label.Id` compares
 * them); the reference resolves a label repeated in the list again and sends its records twice.
 */
import type { HostTopology } from '../task.ts';

/** The reference's `configs.Label` fields, in its `Id()` order. */
export const LABEL_KEYS = [
  'bk_collect_config_id',
  'bk_target_topo_level',
  'bk_target_topo_id',
  'bk_target_cloud_id',
  'bk_target_ip',
  'bk_target_service_category_id',
  'bk_target_service_instance_id',
] as const;

export type TargetLabel = Record<(typeof LABEL_KEYS)[number], string>;

/** Levels the reference names without their `bk_…_id` form (`host.DefaultCMDBLevel`). */
const DEFAULT_LEVELS = new Set(['set', 'module', 'biz']);

/** The task's labels as target labels (the seven keys, '' when absent), each once. */
export function targetLabels(labels: readonly Readonly<Record<string, string>>[]): TargetLabel[] {
  const seen = new Set<string>();
  const out: TargetLabel[] = [];
  for (const l of labels) {
    const v = Object.fromEntries(LABEL_KEYS.map((k) => [k, l[k] ?? ''])) as TargetLabel;
    const id = LABEL_KEYS.map((k) => v[k]).join('||');
    if (seen.has(id)) continue;
    seen.add(id);
    out.push(v);
  }
  return out;
}

/** Go's `strconv.Atoi` on a label value: a decimal integer, optionally signed; otherwise undefined. */
function atoi(s: string): number | undefined {
  return /^[+-]?\d+$/.test(s) && Number.isSafeInteger(Number(s)) ? Number(s) : undefined;
}

/** The links a label targets (see the file comment). */
function linksOf(label: TargetLabel, topology: HostTopology): readonly Readonly<Record<string, number>>[] {
  const serviceInstance = label.bk_target_service_instance_id !== '';
  const dynamicNode = !serviceInstance && label.bk_target_topo_level !== '' && label.bk_target_topo_id !== '';
  if (serviceInstance || dynamicNode) {
    const id = atoi(label.bk_target_topo_id);
    if (id === undefined) return [];
    const level = label.bk_target_topo_level;
    const name = DEFAULT_LEVELS.has(level) ? `bk_${level}_id` : level;
    return topology.links.filter((link) => link[name] === id);
  }
  if (label.bk_target_ip !== '') return topology.links;
  return [];
}

/** One dimension set per (label, link): the label's keys, then the link's (reference `parseTopoLinkInfoToMapStr`). */
export function cmdbDimensions(labels: readonly TargetLabel[], topology: HostTopology | undefined): Record<string, string>[] {
  if (!topology) return [];
  const out: Record<string, string>[] = [];
  for (const label of labels) {
    for (const link of linksOf(label, topology)) {
      const dims: Record<string, string> = { ...label, bk_target_ip: topology.innerIp, bk_target_cloud_id: topology.cloudId };
      for (const [key, value] of Object.entries(link)) dims[key.startsWith('bk_') ? key : `bk_${key}_id`] = String(value);
      out.push(dims);
    }
  }
  return out;
}

/** `record` once per dimension set, each set merged into a copy of its `dimension`; the record itself when there are none. */
export function expandByCmdbLevel<R extends { readonly dimension: Readonly<Record<string, string>> }>(record: R, dimensions: readonly Readonly<Record<string, string>>[]): R[] {
  if (dimensions.length === 0) return [record];
  return dimensions.map((d) => ({ ...record, dimension: { ...record.dimension, ...d } }));
}

/** Gives the records to send for one record (see {@link cmdbExpander}). */
export type RecordExpander = <R extends { readonly dimension: Readonly<Record<string, string>> }>(record: R) => R[];

/**
 * A task's expander: `expand(record)` gives the records to send for `record`, resolving the task's labels
 * again only when the topology changed (the reference re-resolves when the hostid watcher's update time
 * moves). `topology` is the context's (`() => ctx.topology?.()`).
 */
export function cmdbExpander(labels: readonly Readonly<Record<string, string>>[], topology: () => HostTopology | undefined): RecordExpander {
  const targets = targetLabels(labels);
  let resolvedFor: HostTopology | undefined;
  let dimensions: Record<string, string>[] = [];
  return (record) => {
    const now = topology();
    if (now !== resolvedFor) {
      resolvedFor = now;
      dimensions = cmdbDimensions(targets, now);
    }
    return expandByCmdbLevel(record, dimensions);
  };
}
