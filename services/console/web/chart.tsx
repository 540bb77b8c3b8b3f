/**
 * A time-series chart drawn with uPlot (loaded on first use). New data for the same lines is set in
 * place; a different set of lines rebuilds the plot. The width follows the container.
 */
import type uPlot from 'uplot';
import { useEffect, useRef } from 'preact/hooks';
import { bytes } from './format.ts';
import type { ChartData } from './host-series.ts';
import { colourAt } from './waterfall.ts';

function axisValue(unit: ChartData['unit'], v: number): string {
  if (unit === 'B/s') return `${bytes(v)}/s`;
  if (unit === '%') return `${v.toFixed(0)} %`;
  return v.toFixed(2);
}

export function Chart({ data, height = 180 }: { data: ChartData; height?: number }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | undefined>(undefined);
  const labels = useRef('');
  const latest = useRef(data);
  latest.current = data;
  const redraw = useRef<() => void>(() => undefined);
  const points = data.series.reduce((n, s) => n + s.values.filter((v) => v !== null).length, 0);

  useEffect(() => {
    let cancelled = false;
    let observer: ResizeObserver | undefined;
    void import('uplot').then(({ default: UPlot }) => {
      if (cancelled || !box.current) return;
      const draw = (): void => {
        const d = latest.current;
        const key = d.series.map((s) => s.label).join('\n');
        const aligned: uPlot.AlignedData = [d.xs, ...d.series.map((s) => s.values)];
        if (plot.current && key === labels.current) {
          plot.current.setData(aligned);
          return;
        }
        plot.current?.destroy();
        labels.current = key;
        const el = box.current as HTMLDivElement;
        plot.current = new UPlot(
          {
            width: Math.max(200, el.clientWidth),
            height,
            series: [{}, ...d.series.map((s, i) => ({ label: s.label, stroke: colourAt(i), width: 1.5, spanGaps: true, value: (_u: uPlot, v: number | null) => (v === null ? '–' : axisValue(d.unit, v)) }))],
            axes: [{}, { size: 84, values: (_u: uPlot, vals: number[]) => vals.map((v) => axisValue(d.unit, v)) }],
            scales: d.unit === '%' ? { y: { range: [0, 100] } } : {},
            legend: { show: true },
            cursor: { drag: { x: false, y: false } },
          },
          aligned,
          el,
        );
      };
      redraw.current = draw;
      draw();
      observer = new ResizeObserver(() => {
        const el = box.current;
        if (el && plot.current) plot.current.setSize({ width: Math.max(200, el.clientWidth), height });
      });
      observer.observe(box.current);
    });
    return () => {
      cancelled = true;
      observer?.disconnect();
      plot.current?.destroy();
      plot.current = undefined;
    };
  }, []);

  useEffect(() => redraw.current(), [data]);

  return (
    <section class="chart" data-chart={data.key} data-points={points} data-source={data.source}>
      <h3>{data.title}</h3>
      {points === 0 ? <p class="muted">no data in this range</p> : null}
      <div ref={box} class="chart-plot" />
    </section>
  );
}
