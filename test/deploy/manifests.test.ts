/**
 * deploy/ is checked, not run: every Kubernetes resource validates against its schema (kubernetes-models
 * and the Strimzi models), and images, commands, env names, ports, probes and topics agree with the code.
 */
import test from 'ava';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { KafkaTopic } from '@kubernetes-models/strimzi-kafka-operator/kafka.strimzi.io/v1beta2/KafkaTopic';
import { DaemonSet } from 'kubernetes-models/apps/v1/DaemonSet';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { Secret } from 'kubernetes-models/v1/Secret';
import { Service } from 'kubernetes-models/v1/Service';
import { agentSpec } from '../../services/agent/config.ts';
import { simSpec } from '../../services/bkdata-sim/config.ts';
import { receiverSpec } from '../../services/collector/config.ts';
import { commonSpec, loadConfig, type Spec } from '../../services/common/config.ts';
import { consoleSpec } from '../../services/console/config.ts';
import { ConfigError } from '../../services/common/errors.ts';
import { topicPlan, topicsSpec } from '../../services/common/topics.ts';
import { discoverySpec } from '../../services/discovery/config.ts';
import { orchestratorSpec } from '../../services/orchestrator/config.ts';
import { samplerSpec } from '../../services/sampler/config.ts';
import { storageSpec } from '../../services/storage/config.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const DEPLOY = join(ROOT, 'deploy');

interface Validating {
  validate(): void;
}
const MODELS: Record<string, new (data: never) => Validating> = {
  'v1/Namespace': Namespace,
  'v1/ConfigMap': ConfigMap,
  'v1/Secret': Secret,
  'v1/Service': Service,
  'apps/v1/DaemonSet': DaemonSet,
  'apps/v1/Deployment': Deployment,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
  'kafka.strimzi.io/v1beta2/KafkaTopic': KafkaTopic,
};

/** What each service's config reads, by the script its container runs. */
const SERVICE_SPECS: Record<string, Spec> = {
  'services/collector/main.ts': { ...commonSpec, ...receiverSpec },
  'services/discovery/main.ts': { ...commonSpec, ...discoverySpec },
  'services/orchestrator/main.ts': { ...commonSpec, ...orchestratorSpec },
  'services/bkdata-sim/main.ts': { ...commonSpec, ...simSpec },
  'services/agent/main.ts': { ...commonSpec, ...agentSpec },
  'services/agent/dist/agent.cjs': { ...commonSpec, ...agentSpec },
  'services/storage/main.ts': { ...commonSpec, ...storageSpec },
  'services/sampler/main.ts': { ...commonSpec, ...samplerSpec },
  'services/console/main.ts': { ...commonSpec, ...consoleSpec },
  'scripts/topics.ts': { ...commonSpec, ...topicsSpec },
};
/** Scripts the build makes (git-ignored), by the source that makes them. */
const BUILT_FROM: Record<string, string> = { 'services/agent/dist/agent.cjs': 'services/agent/build.ts' };
const envNames = (spec: Spec): Set<string> => new Set(Object.values(spec).map((f) => f.env));
const defaultOf = (spec: Spec, env: string): unknown => Object.values(spec).find((f) => f.env === env)?.default;

interface Resource {
  apiVersion: string;
  kind: string;
  metadata: { name: string };
  spec?: Record<string, unknown>;
  data?: Record<string, string>;
  stringData?: Record<string, string>;
}
interface Container {
  name: string;
  image: string;
  command: string[];
  env?: { name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string }; fieldRef?: unknown } }[];
  envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string } }[];
  ports?: { name: string; containerPort: number }[];
  readinessProbe?: { httpGet: { path: string; port: string; host?: string } };
  livenessProbe?: { httpGet: { path: string; port: string; host?: string } };
}

function k8sResources(): Resource[] {
  const kustomization = parse(readFileSync(join(DEPLOY, 'k8s/kustomization.yaml'), 'utf8')) as { resources: string[] };
  const listed = new Set(kustomization.resources);
  const files = readdirSync(join(DEPLOY, 'k8s')).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml');
  if (files.some((f) => !listed.has(f)) || [...listed].some((f) => !files.includes(f))) {
    throw new Error(`kustomization.yaml resources ${[...listed].join(',')} differ from the files ${files.join(',')}`);
  }
  return files.flatMap((f) =>
    parseAllDocuments(readFileSync(join(DEPLOY, 'k8s', f), 'utf8')).map((d) => {
      if (d.errors.length > 0) throw new Error(`${f}: ${d.errors.map((e) => e.message).join('; ')}`);
      return d.toJS() as Resource;
    }),
  );
}

const containersOf = (r: Resource): Container[] =>
  ((r.spec?.template as { spec: { containers: Container[] } } | undefined)?.spec.containers ?? []);

test('every Kubernetes resource validates against its schema', (t) => {
  const resources = k8sResources();
  t.true(resources.length > 10);
  for (const r of resources) {
    const Model = MODELS[`${r.apiVersion}/${r.kind}`];
    if (!Model) {
      t.fail(`no schema for ${r.apiVersion} ${r.kind} (${r.metadata.name})`);
      continue;
    }
    t.notThrows(() => new Model(r as never).validate(), `${r.kind} ${r.metadata.name}`);
  }
});

test('the schema check itself rejects a broken resource', (t) => {
  const ds = k8sResources().find((r) => r.kind === 'DaemonSet') as Resource;
  const broken = structuredClone(ds);
  ((broken.spec?.template as { spec: { containers: { ports: { containerPort: unknown }[] }[] } }).spec.containers[0]?.ports[0] as { containerPort: unknown }).containerPort = 'four-three-one-seven';
  t.throws(() => new DaemonSet(broken as never).validate());
});

/** The script of a `node [--flag …] script` command. */
function scriptOf(command: readonly string[]): string {
  return command.slice(1).find((a) => !a.startsWith('-')) ?? '';
}

test('workloads run existing services from one image, with env names their config knows and probes on declared ports', (t) => {
  const resources = k8sResources();
  const config = resources.find((r) => r.kind === 'ConfigMap' && r.metadata.name === 'bkstream-config');
  const secret = (name: string) => resources.find((r) => r.kind === 'Secret' && r.metadata.name === name);
  const workloads = resources.filter((r) => r.kind === 'DaemonSet' || r.kind === 'Deployment');
  t.deepEqual(workloads.map((w) => w.metadata.name).sort(), ['bkstream-agent', 'bkstream-collector', 'bkstream-console', 'bkstream-discovery', 'bkstream-orchestrator', 'bkstream-sampler', 'bkstream-storage']);
  const images = new Set<string>();
  for (const w of workloads) {
    for (const c of containersOf(w)) {
      images.add(c.image);
      const script = scriptOf(c.command);
      t.deepEqual(c.command[0], 'node');
      t.true(existsSync(join(ROOT, BUILT_FROM[script] ?? script)), `${w.metadata.name} runs ${script}`);
      const spec = SERVICE_SPECS[script];
      if (!spec) {
        t.fail(`${script} is not a known service`);
        continue;
      }
      const known = envNames(spec);
      const used = [
        ...(c.env ?? []).map((e) => e.name),
        ...(c.envFrom ?? []).flatMap((f) => Object.keys((f.configMapRef ? config?.data : secret(f.secretRef?.name ?? '')?.stringData) ?? {})),
      ];
      for (const name of used) t.true(known.has(name), `${w.metadata.name}: ${name} is not a setting of ${script}`);
      for (const e of c.env ?? []) {
        const ref = e.valueFrom?.secretKeyRef;
        if (ref) t.truthy(secret(ref.name)?.stringData?.[ref.key], `${w.metadata.name}: ${e.name} refers to ${ref.name}/${ref.key}, which exists`);
      }
      // every listener binds all interfaces in a pod, and declares the default port its config uses
      for (const p of c.ports ?? []) {
        const portEnv = Object.values(spec).find((f) => f.env.endsWith('PORT') && f.default === p.containerPort);
        t.truthy(portEnv, `${w.metadata.name}: port ${p.containerPort} is no default port of ${script}`);
      }
      // Readiness follows the database and the broker; liveness only says the process answers (SECURITY.md).
      t.is(c.readinessProbe?.httpGet.path, '/readyz', `${w.metadata.name}: readiness probe`);
      t.is(c.livenessProbe?.httpGet.path, '/livez', `${w.metadata.name}: liveness probe`);
      for (const probe of [c.readinessProbe, c.livenessProbe]) {
        t.true((c.ports ?? []).some((p) => p.name === probe?.httpGet.port), `${w.metadata.name}: probe port ${probe?.httpGet.port} is declared`);
      }
      const hostNetwork = (w.spec?.template as { spec: { hostNetwork?: boolean } }).spec.hostNetwork === true;
      if (hostNetwork) {
        // On the host network 0.0.0.0 would be every address of the node, and no NetworkPolicy applies.
        t.true((c.env ?? []).every((e) => !/_HOST$/.test(e.name) || e.value === '127.0.0.1'), `${w.metadata.name} listens on the node's loopback only`);
        t.is(c.readinessProbe?.httpGet.host, '127.0.0.1');
      } else {
        t.true((c.env ?? []).some((e) => /_HOST$/.test(e.name) && e.value === '0.0.0.0'), `${w.metadata.name} listens beyond loopback`);
      }
      // The admin token comes from a Secret, never from a literal value or the ConfigMap. The console has no
      // credentials of its own (users sign in with theirs): it takes no Secret at all.
      if (script === 'services/console/main.ts') t.deepEqual((c.envFrom ?? []).filter((f) => f.secretRef), [], `${w.metadata.name} takes no Secret`);
      else t.true((c.envFrom ?? []).some((f) => f.secretRef?.name === 'bkstream-admin'), `${w.metadata.name} takes BKSTREAM_ADMIN_TOKEN from the bkstream-admin Secret`);
      t.false((c.env ?? []).some((e) => e.name === 'BKSTREAM_ADMIN_TOKEN' || e.name === 'BKSTREAM_SECRET_KEY' || e.name === 'BKDATA_APP_SECRET' ? e.value !== undefined : false), `${w.metadata.name}: no secret as a literal`);
    }
  }
  t.is(images.size, 1, `one image: ${[...images].join(', ')}`);
});

test('topics are the ones services/common/topics.ts defines, with its partitions, retention and cleanup policy', (t) => {
  const config = k8sResources().find((r) => r.kind === 'ConfigMap' && r.metadata.name === 'bkstream-config');
  const prefix = config?.data?.TOPIC_PREFIX ?? '';
  const topics = k8sResources()
    .filter((r) => r.kind === 'KafkaTopic')
    .map((r) => {
      const config = r.spec?.config as Record<string, unknown>;
      return { topic: r.spec?.topicName, numPartitions: r.spec?.partitions, retentionMs: Number(config['retention.ms']), ...(config['cleanup.policy'] === undefined ? {} : { cleanupPolicy: config['cleanup.policy'] }) };
    });
  t.deepEqual(
    topics.sort((a, b) => String(a.topic).localeCompare(String(b.topic))),
    topicPlan(prefix).sort((a, b) => a.topic.localeCompare(b.topic)),
  );
});

test('the discovery autoscaler stops at the partition count of spans', (t) => {
  const hpa = k8sResources().find((r) => r.kind === 'HorizontalPodAutoscaler');
  t.is(hpa?.spec?.maxReplicas, defaultOf(topicsSpec, 'TOPIC_SPANS_PARTITIONS'));
});

test('the compose file runs the same image and settings the services know', (t) => {
  const compose = parse(readFileSync(join(DEPLOY, 'compose.yaml'), 'utf8'), { merge: true }) as {
    services: Record<string, { image?: string; command?: string[]; environment?: Record<string, unknown> }>;
  };
  const k8sImage = containersOf(k8sResources().find((r) => r.kind === 'Deployment') as Resource)[0]?.image;
  for (const [name, svc] of Object.entries(compose.services)) {
    if (name === 'kafka' || name === 'postgres') continue;
    t.is(svc.image, k8sImage, `${name} image`);
    const script = scriptOf(svc.command ?? []);
    const spec = SERVICE_SPECS[script];
    t.truthy(spec, `${name} runs ${script}`);
    for (const env of Object.keys(svc.environment ?? {})) t.true(envNames(spec ?? {}).has(env), `${name}: ${env} is not a setting of ${script}`);
  }
  const dockerfile = readFileSync(join(DEPLOY, 'Dockerfile'), 'utf8');
  t.regex(dockerfile, /^FROM node:24/m, 'the image runs Node 24, like the project');
});

test('the agent DaemonSet sees the host (network, PID, /proc, /sys, root read-only), keeps its state on the node, and its configuration loads', async (t) => {
  const { loadAgentConfig } = await import('../../services/agent/config-engine.ts');
  const { TASK_TYPES } = await import('../../services/agent/tasks/index.ts');
  const { mkdtempSync, rmSync, writeFileSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const resources = k8sResources();
  const ds = resources.find((r) => r.kind === 'DaemonSet' && r.metadata.name === 'bkstream-agent');
  const pod = (ds?.spec?.template as { spec: Record<string, unknown> } | undefined)?.spec ?? {};
  t.true(pod.hostNetwork);
  t.true(pod.hostPID);
  const volumes = new Map(((pod.volumes ?? []) as { name: string; hostPath?: { path: string } }[]).map((v) => [v.name, v]));
  const [c] = containersOf(ds as Resource) as (Container & { volumeMounts: { name: string; mountPath: string; readOnly?: boolean }[] })[];
  const env = new Map((c?.env ?? []).map((e) => [e.name, e.value]));
  for (const [hostPath, envName] of [['/proc', 'AGENT_PROC_ROOT'], ['/sys', 'AGENT_SYS_ROOT'], ['/', 'AGENT_ROOTFS']] as const) {
    const mount = c?.volumeMounts.find((m) => volumes.get(m.name)?.hostPath?.path === hostPath);
    t.truthy(mount, `host ${hostPath} is mounted`);
    t.true(mount?.readOnly, `host ${hostPath} is read-only`);
    t.is(env.get(envName), mount?.mountPath, `${envName} points at it`);
  }
  const state = c?.volumeMounts.find((m) => m.mountPath === env.get('AGENT_STATE_DIR'));
  t.truthy(volumes.get(state?.name ?? '')?.hostPath, 'the state directory is a hostPath');
  const cm = resources.find((r) => r.kind === 'ConfigMap' && r.metadata.name === 'bkstream-agent');
  const dir = mkdtempSync(join(tmpdir(), 'agent-cm-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'bkmonitorbeat.yaml');
  writeFileSync(file, cm?.data?.['bkmonitorbeat.yaml'] ?? '');
  const loaded = loadAgentConfig(file, { types: TASK_TYPES });
  t.is(loaded.main.mode, 'daemon');
  t.deepEqual(loaded.tasks.map((x) => x.config.type).sort(), ['basereport', 'exceptionbeat', 'selfstats', 'static']);
});

test('secrets: the admin token and the orchestrator\'s keys live in Secrets whose placeholders are refused at start', (t) => {
  const resources = k8sResources();
  const config = resources.find((r) => r.kind === 'ConfigMap' && r.metadata.name === 'bkstream-config');
  for (const key of ['BKSTREAM_ADMIN_TOKEN', 'BKSTREAM_SECRET_KEY', 'BKDATA_APP_SECRET', 'DATABASE_URL']) t.false(key in (config?.data ?? {}), `${key} is not in the ConfigMap`);
  const admin = resources.find((r) => r.kind === 'Secret' && r.metadata.name === 'bkstream-admin');
  const orch = resources.find((r) => r.kind === 'Secret' && r.metadata.name === 'bkstream-orchestrator');
  // An unchanged deploy must not run with a published credential: the placeholders fail validation.
  const env = { ...config?.data, ...admin?.stringData, ...orch?.stringData, BKDATA_API_URL: 'https://bkapi.example.invalid/' };
  const err = t.throws(() => loadConfig({ ...commonSpec, ...orchestratorSpec }, { env }), { instanceOf: ConfigError });
  const keys = (err).problems.map((p) => p.key);
  t.true(keys.includes('BKSTREAM_ADMIN_TOKEN'));
  t.true(keys.includes('BKSTREAM_SECRET_KEY'));
  t.false((err).message.includes('CHANGE-ME'), 'problems never repeat a secret');
});

test('network: Services are cluster-internal, the collector\'s admin port is not on its Service, and NetworkPolicies deny by default', (t) => {
  const resources = k8sResources();
  const services = resources.filter((r) => r.kind === 'Service');
  t.true(services.length >= 4);
  for (const svc of services) t.is((svc.spec as { type?: string }).type, 'ClusterIP', `${svc.metadata.name} is ClusterIP (no NodePort, no LoadBalancer)`);
  const collector = services.find((s) => s.metadata.name === 'bkstream-collector');
  t.deepEqual(((collector?.spec as { ports: { port: number }[] }).ports).map((p) => p.port).sort(), [4317, 4318], 'OTLP only: no admin port on the Service');

  type Rule = { from?: Record<string, unknown>[]; ports?: { port: number }[] };
  const policies = resources.filter((r) => r.kind === 'NetworkPolicy').map((r) => r.spec as { podSelector: Record<string, unknown>; policyTypes: string[]; ingress?: Rule[] });
  const denyAll = policies.find((p) => Object.keys(p.podSelector).length === 0 && p.policyTypes.includes('Ingress') && (p.ingress ?? []).length === 0);
  t.truthy(denyAll, 'a default-deny ingress policy for every pod of the namespace');
  const allowed = (port: number): Rule[] => policies.flatMap((p) => (p.ingress ?? []).filter((r) => (r.ports ?? []).some((x) => x.port === port)));
  for (const port of [4317, 4318]) t.true(allowed(port).some((r) => (r.from ?? []).some((f) => JSON.stringify(f) === '{"namespaceSelector":{}}')), `OTLP ${port} from the cluster`);
  // Every admin or query port a workload declares is admitted only from bkstream's pods or a labelled scraper namespace.
  const apiPorts = resources.filter((r) => r.kind === 'Deployment' || r.kind === 'DaemonSet')
    .filter((w) => (w.spec?.template as { spec: { hostNetwork?: boolean } }).spec.hostNetwork !== true)
    .flatMap((w) => containersOf(w).flatMap((c) => (c.ports ?? []).map((p) => p.containerPort)))
    .filter((p) => p !== 4317 && p !== 4318);
  t.true(apiPorts.length >= 5, apiPorts.join(','));
  t.true(apiPorts.includes(8080), 'the console\'s port');
  for (const port of apiPorts) {
    const rules = allowed(port);
    t.true(rules.length > 0, `port ${port} is admitted by some policy (else unreachable)`);
    for (const rule of rules) {
      for (const from of rule.from ?? []) {
        const ok = JSON.stringify(from) === '{"podSelector":{"matchLabels":{"app.kubernetes.io/part-of":"bkstream"}}}' ||
          JSON.stringify(from) === '{"namespaceSelector":{"matchLabels":{"bkstream.io/metrics-scraper":"true"}}}' ||
          // the console's users come through an ingress controller in a namespace labelled for it
          (port === 8080 && JSON.stringify(from) === '{"namespaceSelector":{"matchLabels":{"bkstream.io/console-ingress":"true"}}}');
        t.true(ok, `port ${port} admits only bkstream's pods or metrics scrapers, not ${JSON.stringify(from)}`);
      }
      t.true((rule.from ?? []).length > 0, `port ${port}: a rule without "from" would admit everyone`);
    }
  }
});

test('compose publishes every port on the host\'s loopback and takes the admin token and the secret key from the shell', (t) => {
  const text = readFileSync(join(DEPLOY, 'compose.yaml'), 'utf8');
  const compose = parse(text, { merge: true }) as { services: Record<string, { ports?: string[]; environment?: Record<string, unknown> }> };
  for (const [name, svc] of Object.entries(compose.services)) for (const p of svc.ports ?? []) t.regex(p, /^127\.0\.0\.1:/, `${name} publishes ${p} on loopback only`);
  t.regex(String(compose.services.collector?.environment?.BKSTREAM_ADMIN_TOKEN), /^\$\{BKSTREAM_ADMIN_TOKEN:\?/);
  t.regex(String(compose.services.orchestrator?.environment?.BKSTREAM_SECRET_KEY), /^\$\{BKSTREAM_SECRET_KEY:\?/);
});

test('the console reaches every upstream API through a Service with that port, under a host name the upstreams answer to', (t) => {
  const resources = k8sResources();
  const config = resources.find((r) => r.kind === 'ConfigMap' && r.metadata.name === 'bkstream-config');
  const allowedHosts = (config?.data?.BKSTREAM_ALLOWED_HOSTS ?? '').split(',');
  const workload = resources.find((r) => r.kind === 'Deployment' && r.metadata.name === 'bkstream-console') as Resource;
  const env = new Map((containersOf(workload)[0]?.env ?? []).map((e) => [e.name, e.value ?? '']));
  const services = resources.filter((r) => r.kind === 'Service');
  const workloads = resources.filter((r) => r.kind === 'Deployment' || r.kind === 'DaemonSet');
  const upstreams = ['CONSOLE_DISCOVERY_URL', 'CONSOLE_STORAGE_URL', 'CONSOLE_ORCHESTRATOR_URL', 'CONSOLE_COLLECTOR_ADMIN_URL'];
  for (const key of upstreams) {
    const u = new URL(env.get(key) ?? '');
    const svc = services.find((s) => s.metadata.name === u.hostname);
    t.truthy(svc, `${key}: a Service ${u.hostname}`);
    const port = (svc?.spec as { ports: { port: number; targetPort: string }[] } | undefined)?.ports.find((p) => p.port === Number(u.port));
    t.truthy(port, `${key}: ${u.hostname} has port ${u.port}`);
    // the Service's selector picks a workload that declares the target port
    const selector = (svc?.spec as { selector: Record<string, string> } | undefined)?.selector ?? {};
    const target = workloads.find((w) => Object.entries(selector).every(([k, v]) => (w.spec?.template as { metadata: { labels: Record<string, string> } }).metadata.labels[k] === v));
    t.true(containersOf(target as Resource).some((c) => (c.ports ?? []).some((p) => p.name === port?.targetPort && p.containerPort === Number(u.port))), `${key}: ${u.hostname} reaches a pod listening on ${u.port}`);
    t.true(allowedHosts.includes(u.hostname), `${key}: the upstreams answer to the host name ${u.hostname} (BKSTREAM_ALLOWED_HOSTS)`);
  }
  // the console itself: its Service's names are the ones it answers to
  const own = (env.get('CONSOLE_ALLOWED_HOSTS') ?? '').split(',');
  t.true(own.includes('bkstream-console'));
  t.true(services.some((s) => s.metadata.name === 'bkstream-console'));
  t.is(env.get('CONSOLE_ASSETS_DIR'), '/app/services/console/dist', 'the image\'s built front end, never rebuilt in the pod');
  t.regex(readFileSync(join(DEPLOY, 'Dockerfile'), 'utf8'), /^COPY --from=\S+ \S*services\/console\/dist \.\/services\/console\/dist$/m, 'the image carries the console\'s bundle');
  // and the console's configuration loads as its start would check it
  const loaded = loadConfig({ ...commonSpec, ...consoleSpec }, { env: { ...config?.data, ...Object.fromEntries(env) } });
  t.is(loaded.host, '0.0.0.0');
});
