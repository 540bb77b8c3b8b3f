/**
 * The service map of one application: discovery's topo nodes and relations as a graph, with requests,
 * error rates and p99 from storage's span aggregations over the chosen range; a node opens its
 * endpoints, instances and hosts. The same figures are listed as a table under the graph.
 */
import { useEffect, useMemo, useState } from 'preact/hooks';
import { appPath, call } from '../api.ts';
import { count, duration, percent, RANGES, rangeSeconds, text } from '../format.ts';
import { Graph } from '../graph.tsx';
import { KIND_NAMES } from '../icons.ts';
import { buildServiceMap, byService, byServiceCategory, byServicePeer, type AggregateRow, type Red, type ServiceMap, type TopoNode, type TopoRelation } from '../map-model.ts';
import { usePoll } from '../poll.ts';
import { href, navigate } from '../router.ts';
import type { Listing } from '../types.ts';

const PAGE = 1000;

interface MapData {
  map: ServiceMap;
  /** Why the figures are missing, when storage did not answer. */
  figuresError: string | undefined;
}

function aggregate(bkBizId: number, appName: string, range: { start: number; end: number }, kinds: number[], groupBy: string[], signal: AbortSignal, more: unknown[] = []): Promise<{ groups: AggregateRow[] }> {
  return call<{ groups: AggregateRow[] }>('storage', `${appPath(bkBizId, appName)}/aggregate`, {
    query: { start_time: range.start, end_time: range.end, metrics: 'count,error_rate,p99', group_by: groupBy.join(','), filters: JSON.stringify([{ key: 'kind', operator: 'equal', value: kinds }, ...more]) },
    signal,
  });
}

function NodePanel({ bkBizId, appName, node, map, onClose }: { bkBizId: number; appName: string; node: string; map: ServiceMap; onClose: () => void }) {
  const n = map.nodes.find((x) => x.id === node);
  const isService = n?.kind === 'service' || n?.kind === 'virtual_service';
  const details = usePoll(async (signal) => {
    const base = appPath(bkBizId, appName);
    const [endpoints, instances, hosts] = await Promise.all([
      isService ? call<Listing<Record<string, unknown>>>('discovery', `${base}/endpoints`, { query: { service_name: node, page_size: 100 }, signal }) : Promise.resolve(undefined),
      call<Listing<Record<string, unknown>>>('discovery', `${base}/instances`, { query: { topo_node_key: node, page_size: 100 }, signal }),
      call<Listing<Record<string, unknown>>>('discovery', `${base}/hosts`, { query: { topo_node_key: node, page_size: 100 }, signal }),
    ]);
    return { endpoints, instances, hosts };
  }, [bkBizId, appName, node]);
  const d = details.data;
  return (
    <aside class="card node-panel" aria-label={`node ${node}`} data-testid="node-panel">
      <div class="row between">
        <h2>{node}</h2>
        <button type="button" class="link" onClick={onClose} aria-label="close">✕</button>
      </div>
      <p class="muted">
        {KIND_NAMES[n?.kind ?? ''] ?? n?.kind} · {n?.category}
        {n?.red ? ` · ${count(n.red.count)} requests · ${percent(n.red.errorRate)} errors${n.red.p99 !== undefined ? ` · p99 ${duration(n.red.p99)}` : ''}` : ''}
      </p>
      {isService ? (
        <p>
          <a href={href(['apps', bkBizId, appName, 'traces'], { service: node })}>Traces of {node}</a>
        </p>
      ) : null}
      {details.error ? <p class="error">{details.error.message}</p> : null}
      {!d ? <p class="muted">Loading…</p> : null}
      {d?.endpoints ? (
        <section data-testid="node-endpoints">
          <h3>Endpoints ({d.endpoints.total})</h3>
          <ul class="plain">
            {d.endpoints.items.map((e) => (
              <li key={text(e.id)}>
                <span class="mono">{text(e.endpoint_name)}</span> <span class="muted">{text(e.category_id)}</span>
              </li>
            ))}
          </ul>
        </section>
      ) : null}
      {d ? (
        <section data-testid="node-instances">
          <h3>Instances ({d.instances.total})</h3>
          <ul class="plain">
            {d.instances.items.map((i) => (
              <li key={text(i.id)} class="mono">
                {text(i.instance_id)}
                {i.sdk_language ? <span class="muted"> {text(i.sdk_language)} {text(i.sdk_version)}</span> : null}
              </li>
            ))}
          </ul>
        </section>
      ) : null}
      {d ? (
        <section data-testid="node-hosts">
          <h3>Hosts ({d.hosts.total})</h3>
          <ul class="plain">
            {d.hosts.items.map((h) => (
              <li key={text(h.id)} class="mono">
                {text(h.ip)}
                {h.bk_host_id !== null && h.bk_host_id !== undefined ? <span class="muted"> host {text(h.bk_host_id)}</span> : null}
              </li>
            ))}
          </ul>
        </section>
      ) : null}
    </aside>
  );
}

export function MapPage({ bkBizId, appName, query }: { bkBizId: number; appName: string; query: URLSearchParams }) {
  const rangeKey = query.get('range') ?? '1h';
  const selected = query.get('node') ?? undefined;
  const [positions, setPositions] = useState<Map<string, { x: number; y: number }> | undefined>(undefined);
  // The graph library loads while the APIs answer, not after.
  useEffect(() => void import('cytoscape'), []);
  // The topology is drawn as soon as discovery answers; the figures from storage are asked for then, and added when they arrive.
  const topology = usePoll(async (signal) => {
    const base = appPath(bkBizId, appName);
    const [nodes, relations] = await Promise.all([
      call<Listing<TopoNode>>('discovery', `${base}/nodes`, { query: { page_size: PAGE }, signal }),
      call<Listing<TopoRelation>>('discovery', `${base}/relations`, { query: { page_size: PAGE }, signal }),
    ]);
    return { nodes: nodes.items, relations: relations.items };
  }, [bkBizId, appName]);
  const figures = usePoll(async (signal) => {
    const end = Math.floor(Date.now() / 1000);
    const range = { start: end - rangeSeconds(rangeKey), end };
    const [server, client, peers] = await Promise.all([
      aggregate(bkBizId, appName, range, [2, 5], ['resource.service.name'], signal),
      aggregate(bkBizId, appName, range, [3, 4], ['resource.service.name', 'category'], signal),
      aggregate(bkBizId, appName, range, [3, 4], ['resource.service.name', 'attributes.peer.service'], signal, [{ key: 'attributes.peer.service', operator: 'exists', value: [] }]),
    ]);
    return { server: byService(server.groups), client: byServiceCategory(client.groups), peers: byServicePeer(peers.groups) };
  }, [bkBizId, appName, rangeKey], { enabled: topology.data !== undefined });
  useEffect(() => {
    if (topology.data && performance.getEntriesByName('bk:topology').length === 0) performance.mark('bk:topology');
  }, [topology.data]);
  const data = useMemo<MapData | undefined>(
    () => (topology.data ? { map: buildServiceMap(topology.data.nodes, topology.data.relations, figures.data?.server ?? new Map<string, Red>(), figures.data?.client ?? new Map<string, Red>(), figures.data?.peers), figuresError: figures.error?.message } : undefined),
    [topology.data, figures.data, figures.error],
  );

  const go = (changes: Record<string, string | undefined>): void => {
    const q: Record<string, string | undefined> = { range: rangeKey, node: selected, ...changes };
    navigate(href(['apps', bkBizId, appName, 'map'], q));
  };
  return (
    <div class="page map-page">
      <div class="row between wrap">
        <h1>Service map</h1>
        <label class="inline">
          Range{' '}
          <select value={rangeKey} onChange={(e) => go({ range: (e.target as HTMLSelectElement).value })} name="range">
            {RANGES.map((r) => (
              <option key={r.key} value={r.key}>{r.label}</option>
            ))}
          </select>
        </label>
      </div>
      {topology.error ? <p class="error" role="alert">{topology.error.message}</p> : null}
      {data?.figuresError ? <p class="warn">Requests and errors are not shown: {data.figuresError}</p> : null}
      {data && data.map.nodes.length === 0 ? <p class="muted" data-testid="map-empty">Nothing discovered yet for {bkBizId}/{appName}: send traces with its token.</p> : null}
      <div class="map-layout">
        {data && data.map.nodes.length > 0 ? (
          <Graph
            map={data.map}
            selected={selected}
            onSelect={(id) => go({ node: id })}
            onDrawn={(p) => {
              if (p.size > 0 && performance.getEntriesByName('bk:first-data').length === 0) performance.mark('bk:first-data');
              // the tables below are built after the graph is drawn, so they do not hold it up
              setPositions(p);
            }}
          />
        ) : (
          <div class="graph placeholder">{data ? '' : 'Loading…'}</div>
        )}
        {selected && data ? <NodePanel bkBizId={bkBizId} appName={appName} node={selected} map={data.map} onClose={() => go({ node: undefined })} /> : null}
      </div>
      <p class="legend muted">
        <span class="dot http" /> http <span class="dot rpc" /> rpc <span class="dot db" /> database <span class="dot messaging" /> messaging <span class="dot remote" /> remote service · dashed edges are asynchronous · red edges fail 5 % or more · ≈ figures are shared by several edges of one caller
      </p>
      {data && positions ? (
        <details class="card">
          <summary>
            {data.map.nodes.length} nodes and {data.map.edges.length} relations as tables
          </summary>
          <div class="table-wrap">
            <table class="list" data-testid="map-nodes">
              <thead>
                <tr><th>Node</th><th>Kind</th><th>Category</th><th>Requests</th><th>Errors</th><th>p99</th></tr>
              </thead>
              <tbody>
                {data.map.nodes.map((n) => {
                  const p = positions.get(n.id);
                  return (
                    <tr key={n.id} data-node={n.id} data-x={p ? Math.round(p.x) : ''} data-y={p ? Math.round(p.y) : ''}>
                      <td><button type="button" class="link" onClick={() => go({ node: n.id })}>{n.label}</button></td>
                      <td>{KIND_NAMES[n.kind] ?? n.kind}</td>
                      <td>{n.category}</td>
                      <td>{n.red ? count(n.red.count) : '–'}</td>
                      <td>{n.red ? percent(n.red.errorRate) : '–'}</td>
                      <td>{n.red?.p99 !== undefined ? duration(n.red.p99) : '–'}</td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
            <table class="list" data-testid="map-edges" data-figures={figures.data ? 'yes' : 'no'}>
              <thead>
                <tr><th>From</th><th>To</th><th>Kind</th><th>Requests</th><th>Errors</th></tr>
              </thead>
              <tbody>
                {data.map.edges.map((e) => (
                  <tr key={e.id} data-edge={e.id}>
                    <td>{e.source}</td>
                    <td>{e.target}</td>
                    <td>{e.kind}</td>
                    <td>{e.red ? `${e.approx ? '≈' : ''}${count(e.red.count)}` : '–'}</td>
                    <td>{e.red ? percent(e.red.errorRate) : '–'}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </details>
      ) : null}
    </div>
  );
}
