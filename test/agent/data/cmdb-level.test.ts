/**
 * Records expanded by CMDB level (reference tasks.CmdbEventSender, host watcher GetInfoByLevelID /
 * GetInfoByCloudIdAndIp): which links each kind of label resolves to, the keys a link adds, and when a
 * record goes out as it is.
 */
import test from 'ava';
import { cmdbDimensions, cmdbExpander, expandByCmdbLevel, targetLabels } from '../../../services/agent/tasks/cmdb-level.ts';
import type { HostTopology } from '../../../services/agent/task.ts';

const TOPOLOGY: HostTopology = {
  innerIp: '10.0.0.5',
  cloudId: '3',
  links: [
    { bk_biz_id: 9, bk_set_id: 5, bk_module_id: 8, room: 4 },
    { bk_biz_id: 9, bk_set_id: 6, bk_module_id: 8 },
    { bk_biz_id: 2, bk_set_id: 7, bk_module_id: 1 },
  ],
};

const EMPTY = { bk_collect_config_id: '', bk_target_topo_level: '', bk_target_topo_id: '', bk_target_cloud_id: '', bk_target_ip: '', bk_target_service_category_id: '', bk_target_service_instance_id: '' };

function dims(labels: Record<string, string>[], ...topology: [HostTopology | undefined] | []): Record<string, string>[] {
  return cmdbDimensions(targetLabels(labels), topology.length === 0 ? TOPOLOGY : topology[0]);
}

test('a dynamic-node label: the links holding its level with its id; set/module/biz as bk_<level>_id, custom levels by object id', (t) => {
  t.deepEqual(dims([{ bk_target_topo_level: 'module', bk_target_topo_id: '8', bk_collect_config_id: '12' }]), [
    { ...EMPTY, bk_collect_config_id: '12', bk_target_topo_level: 'module', bk_target_topo_id: '8', bk_target_ip: '10.0.0.5', bk_target_cloud_id: '3', bk_biz_id: '9', bk_set_id: '5', bk_module_id: '8', bk_room_id: '4' },
    { ...EMPTY, bk_collect_config_id: '12', bk_target_topo_level: 'module', bk_target_topo_id: '8', bk_target_ip: '10.0.0.5', bk_target_cloud_id: '3', bk_biz_id: '9', bk_set_id: '6', bk_module_id: '8' },
  ]);
  t.is(dims([{ bk_target_topo_level: 'room', bk_target_topo_id: '4' }]).length, 1, 'a custom level is matched by its object id');
  t.is(dims([{ bk_target_topo_level: 'bk_set_id', bk_target_topo_id: '7' }]).length, 1, 'a level already in bk_…_id form is used as it is');
  t.deepEqual(dims([{ bk_target_topo_level: 'set', bk_target_topo_id: '99' }]), [], 'no link with that id');
  t.deepEqual(dims([{ bk_target_topo_level: 'set', bk_target_topo_id: 'x5' }]), [], 'an id that is not an integer matches nothing');
});

test('a service-instance label resolves by its topo level and id, whatever its IP; a static-IP label takes every link', (t) => {
  const si = dims([{ bk_target_service_instance_id: '77', bk_target_topo_level: 'set', bk_target_topo_id: '7', bk_target_ip: '10.9.9.9' }]);
  t.is(si.length, 1);
  t.like(si[0], { bk_target_service_instance_id: '77', bk_set_id: '7', bk_biz_id: '2', bk_target_ip: '10.0.0.5', bk_target_cloud_id: '3' });
  t.deepEqual(dims([{ bk_target_service_instance_id: '77' }]), [], 'a service instance without a topo id resolves to nothing');
  const ip = dims([{ bk_target_ip: '10.0.0.99', bk_target_cloud_id: '0' }]);
  t.is(ip.length, 3, 'the reference only logs a static IP that is not the host\'s');
  t.like(ip[2], { bk_target_ip: '10.0.0.5', bk_target_cloud_id: '3', bk_set_id: '7' });
  t.deepEqual(dims([{ bk_collect_config_id: '1' }]), [], 'a label with none of the target keys resolves to nothing');
});

test('labels count once each; without topology or links the record is sent once as it is', (t) => {
  const label = { bk_target_topo_level: 'set', bk_target_topo_id: '5' };
  t.is(dims([label, { ...label }]).length, 1);
  t.deepEqual(dims([label], undefined), []);
  const record = { event_name: 'x', dimension: { file_path: '/a' } };
  t.deepEqual(expandByCmdbLevel(record, []), [record]);
  const expanded = expandByCmdbLevel(record, dims([label]));
  t.is(expanded.length, 1);
  t.like(expanded[0]?.dimension, { file_path: '/a', bk_set_id: '5', bk_target_topo_id: '5' });
  t.deepEqual(record.dimension, { file_path: '/a' }, 'the record itself is not changed');
});

test('an expander resolves again only when the topology object changes', (t) => {
  let topology: HostTopology | undefined;
  let calls = 0;
  const expand = cmdbExpander([{ bk_target_ip: '10.0.0.5' }], () => {
    calls++;
    return topology;
  });
  const record = { dimension: {} as Record<string, string> };
  t.is(expand(record).length, 1);
  topology = TOPOLOGY;
  t.is(expand(record).length, 3);
  t.is(expand(record).length, 3);
  topology = { ...TOPOLOGY, links: [] };
  t.deepEqual(expand(record), [record], 'no link: the record as it is');
  t.is(calls, 4);
});
