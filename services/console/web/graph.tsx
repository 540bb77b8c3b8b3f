/**
 * The service map drawn with cytoscape (loaded on first use: the rest of the console does not wait for
 * it). Nodes carry their kind/category icon, edges their request count and error rate; a tap on a node
 * selects it. Nodes are placed by {@link layeredLayout} (left to right, linear time). When only the
 * figures change, labels are updated in place and the layout stays put.
 */
import type { Core, ElementDefinition, EventObject } from 'cytoscape';
import { useEffect, useRef } from 'preact/hooks';
import { count, percent } from './format.ts';
import { CATEGORY_COLOURS, iconKey, iconUrl } from './icons.ts';
import { layeredLayout, type ServiceMap } from './map-model.ts';

export interface GraphProps {
  map: ServiceMap;
  selected: string | undefined;
  onSelect: (id: string | undefined) => void;
  /** Called once the graph is drawn (its first frame), and whenever node positions change. */
  onDrawn?: (positions: Map<string, { x: number; y: number }>) => void;
}

function edgeLabel(e: ServiceMap['edges'][number]): string {
  if (!e.red) return '';
  return `${e.approx ? '≈' : ''}${count(e.red.count)} req · ${percent(e.red.errorRate)} err`;
}

function elements(map: ServiceMap): ElementDefinition[] {
  return [
    ...map.nodes.map((n) => ({
      group: 'nodes' as const,
      data: {
        id: n.id,
        label: n.red ? `${n.label}\n${count(n.red.count)} · ${percent(n.red.errorRate)}` : n.label,
        icon: iconUrl(n.kind, n.category),
        colour: CATEGORY_COLOURS[iconKey(n.kind, n.category)] ?? '#8a94a6',
        kind: n.kind,
      },
    })),
    ...map.edges.map((e) => ({
      group: 'edges' as const,
      data: { id: e.id, source: e.source, target: e.target, label: edgeLabel(e), error: e.red && e.red.errorRate >= 0.05 ? 1 : 0, width: e.red ? Math.min(6, 1 + Math.log10(1 + e.red.count)) : 1 },
      classes: e.kind === 'async' ? 'async' : '',
    })),
  ];
}

/** The shape of the graph (ids of nodes and edges), to tell a new graph from new figures. */
function shape(map: ServiceMap): string {
  return [...map.nodes.map((n) => n.id).sort(), '|', ...map.edges.map((e) => e.id).sort()].join('\n');
}

export function Graph(props: GraphProps) {
  const box = useRef<HTMLDivElement>(null);
  const cy = useRef<Core | undefined>(undefined);
  const drawnShape = useRef('');
  const latest = useRef(props);
  latest.current = props;

  const report = (): void => {
    const c = cy.current;
    if (!c || !latest.current.onDrawn) return;
    const positions = new Map<string, { x: number; y: number }>();
    c.nodes().forEach((n) => {
      positions.set(n.id(), n.renderedPosition());
    });
    latest.current.onDrawn(positions);
  };

  useEffect(() => {
    let cancelled = false;
    let observer: ResizeObserver | undefined;
    void import('cytoscape').then(({ default: cytoscape }) => {
      if (cancelled || !box.current) return;
      const instance = cytoscape({
        container: box.current,
        elements: [],
        minZoom: 0.1,
        maxZoom: 3,
        wheelSensitivity: 0.3,
        // large maps: cached textures while panning and zooming
        textureOnViewport: true,
        style: [
          {
            selector: 'node',
            style: {
              'background-color': '#ffffff',
              'background-image': 'data(icon)',
              'background-fit': 'contain',
              'border-width': 2,
              'border-color': 'data(colour)',
              width: 34,
              height: 34,
              label: 'data(label)',
              'font-size': 11,
              // labels too small to read at the current zoom are not drawn
              'min-zoomed-font-size': 7,
              'text-wrap': 'wrap',
              'text-valign': 'bottom',
              'text-margin-y': 4,
              color: '#1f2937',
              'text-background-color': '#ffffff',
              'text-background-opacity': 0.8,
              'text-background-padding': '1px',
            },
          },
          { selector: 'node[kind = "component"]', style: { shape: 'round-rectangle' } },
          { selector: 'node[kind = "remote_service"]', style: { shape: 'round-diamond', 'border-style': 'dashed' } },
          { selector: 'node:selected', style: { 'border-width': 4, 'border-color': '#111827' } },
          {
            selector: 'edge',
            style: {
              width: 'data(width)',
              'line-color': '#9aa5b8',
              'target-arrow-color': '#9aa5b8',
              'target-arrow-shape': 'triangle',
              'curve-style': 'bezier',
              label: 'data(label)',
              'font-size': 10,
              'min-zoomed-font-size': 7,
              color: '#374151',
              'text-rotation': 'autorotate',
              'text-background-color': '#ffffff',
              'text-background-opacity': 0.85,
              'text-background-padding': '1px',
            },
          },
          { selector: 'edge.async', style: { 'line-style': 'dashed' } },
          { selector: 'edge[error = 1]', style: { 'line-color': '#dc2626', 'target-arrow-color': '#dc2626', color: '#b91c1c' } },
        ],
      });
      instance.on('tap', (ev: EventObject) => {
        const target = ev.target as Core | { isNode?: () => boolean; id: () => string };
        if (target === instance) latest.current.onSelect(undefined);
        else if ('isNode' in target && target.isNode?.()) latest.current.onSelect(target.id());
      });
      instance.on('pan zoom resize layoutstop', report);
      cy.current = instance;
      draw();
      // the container changes size when a node's panel opens or closes
      observer = new ResizeObserver(() => instance.resize());
      observer.observe(box.current);
    });
    return () => {
      cancelled = true;
      observer?.disconnect();
      cy.current?.destroy();
      cy.current = undefined;
    };
  }, []);

  const draw = (): void => {
    const c = cy.current;
    if (!c) return;
    const { map } = latest.current;
    const s = shape(map);
    if (s === drawnShape.current) {
      // the same graph: new figures only
      for (const el of elements(map)) c.getElementById(el.data.id as string).data(el.data);
      return;
    }
    drawnShape.current = s;
    c.batch(() => {
      c.elements().remove();
      c.add(elements(map));
    });
    const positions = layeredLayout(map);
    c.layout({ name: 'preset', positions: Object.fromEntries(positions), animate: false, fit: false }).run();
    // Fit to the node positions (cheap) rather than to every label's measured box.
    const xs = [...positions.values()].map((p) => p.x);
    const ys = [...positions.values()].map((p) => p.y);
    const pad = 70;
    const [minX, maxX, minY, maxY] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
    const zoom = Math.max(0.1, Math.min(1.5, c.width() / (maxX - minX + 2 * pad), c.height() / (maxY - minY + 2 * pad)));
    c.viewport({ zoom, pan: { x: c.width() / 2 - ((minX + maxX) / 2) * zoom, y: c.height() / 2 - ((minY + maxY) / 2) * zoom } });
    c.one('render', report);
  };

  useEffect(draw, [props.map]);
  useEffect(() => {
    const c = cy.current;
    if (!c) return;
    c.nodes(':selected').unselect();
    if (props.selected) c.getElementById(props.selected).select();
  }, [props.selected]);

  return <div class="graph" ref={box} data-testid="service-map" role="img" aria-label={`service map: ${props.map.nodes.length} nodes, ${props.map.edges.length} relations`} />;
}
