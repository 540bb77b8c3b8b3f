/**
 * The flow kinds, by flow type (README, How it works). A new flow type is one file in this folder that
 * exports a FlowKind, and one line here.
 */
import type { FlowType } from '../../common/records.ts';
import type { Desired } from '../model.ts';
import { DELETE_PLAN, STOP_PLAN } from '../steps/teardown.ts';
import type { FlowKind, StepDef } from './kind.ts';
import { tailSampling } from './tail-sampling.ts';
import { virtualMetric } from './virtual-metric.ts';

export const FLOW_KINDS: Readonly<Record<FlowType, FlowKind>> = {
  tail_sampling: tailSampling,
  virtual_metric: virtualMetric,
};

/** Every flow type a command may name. */
export const FLOW_TYPES = Object.keys(FLOW_KINDS) as readonly FlowType[];

/** The kind of a flow type; undefined for a name that is none. */
export function kindOf(flowType: string): FlowKind | undefined {
  return Object.hasOwn(FLOW_KINDS, flowType) ? FLOW_KINDS[flowType as FlowType] : undefined;
}

/** The steps a flow of `flowType` runs, in order, to reach `desired`. */
export function planOf(flowType: FlowType, desired: Desired): readonly StepDef[] {
  switch (desired) {
    case 'running':
      return FLOW_KINDS[flowType].createPlan;
    case 'stopped':
      return STOP_PLAN;
    case 'deleted':
      return DELETE_PLAN;
  }
}
