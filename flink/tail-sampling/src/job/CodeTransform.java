import com.google.gson.Gson;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParseException;
import com.google.gson.annotations.SerializedName;
import com.tencent.bk.base.dataflow.common.api.AbstractFlinkBasicTransform;

import java.io.ByteArrayOutputStream;
import java.io.Serializable;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;

import org.apache.flink.api.common.state.MapState;
import org.apache.flink.api.common.state.MapStateDescriptor;
import org.apache.flink.api.common.state.StateTtlConfig;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.time.Time;
import org.apache.flink.api.common.typeinfo.BasicTypeInfo;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.java.functions.KeySelector;
import org.apache.flink.api.java.typeutils.RowTypeInfo;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.metrics.Counter;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.types.Row;
import org.apache.flink.util.Collector;
import org.apache.flink.util.OutputTag;

/**
 * bkstream's tail-sampling job for BKData's Flink code node (JDK 1.8, Flink 1.17; BKData needs the class
 * name {@code CodeTransform}). It behaves as the tail-sampling job of BlueKing Monitor: per trace id,
 *
 * <ul>
 *   <li>a trace seen first more than {@code trace_mark_timeout_min} minutes ago (whole minutes of the
 *       processing clock) forgets its tag, and the span that finds this out is dropped;</li>
 *   <li>a trace whose md5(trace_id) mod 100 is below {@code random_sampling_ratio} emits its spans while
 *       it has emitted fewer than {@code max_span_count};</li>
 *   <li>a marked trace emits its spans up to {@code max_span_count};</li>
 *   <li>a span that matches {@code sampling_conditions} marks the trace, is emitted, and the spans buffered
 *       for the trace are emitted after it (stamped with its time) until {@code max_span_count};</li>
 *   <li>any other span is buffered ({@code trace_session_gap_min} minutes from its write).</li>
 * </ul>
 *
 * Conditions are AND groups joined by OR: the first condition's connector is ignored, an {@code or}
 * condition starts a new group and is itself dropped, and an empty group matches every span. A key
 * {@code a.b} reads field {@code b} of the span's object {@code a} (split on the first dot only).
 * {@code eq}/{@code neq}/{@code reg}/{@code nreg} compare the value as a string (a regex must match the
 * whole value); {@code gt}/{@code gte} compare it as a double with the largest value, {@code lt}/{@code lte}
 * with the smallest.
 *
 * <p>Where the reference job would throw on a span (a value of the wrong type for its operator, an
 * unsupported method, a span it cannot format), this job drops that span, leaves the trace's state as it
 * was, counts it ({@code tailSamplingRejected}) and names it on the {@link #REJECTED} side output: the
 * reference fails and restarts forever on such a span. State expires exactly at its TTL (never returned
 * once expired), and buffered spans are flushed in the order RocksDB keeps them (by serialized span id),
 * so the output does not depend on compaction timing or on the state backend. bkstream's conformance
 * file (flink/tail-sampling/conformance.json) pins every rule above; its native sampler
 * (services/sampler) passes the same file.
 */
public class CodeTransform extends AbstractFlinkBasicTransform {

    private static final long serialVersionUID = 1L;

    /** The fields of the node's output table, in order (the flink_streaming node's {@code outputs}). */
    public static final String[] OUTPUT_FIELDS = {
        "time", "span_name", "span_id", "kind", "events", "parent_span_id", "end_time", "links",
        "trace_id", "elapsed_time", "status", "attributes", "start_time", "trace_state", "resource", "datatime",
    };

    /** Their types. */
    public static final TypeInformation<?>[] OUTPUT_TYPES = {
        BasicTypeInfo.STRING_TYPE_INFO, BasicTypeInfo.STRING_TYPE_INFO, BasicTypeInfo.STRING_TYPE_INFO,
        BasicTypeInfo.INT_TYPE_INFO, BasicTypeInfo.STRING_TYPE_INFO, BasicTypeInfo.STRING_TYPE_INFO,
        BasicTypeInfo.LONG_TYPE_INFO, BasicTypeInfo.STRING_TYPE_INFO, BasicTypeInfo.STRING_TYPE_INFO,
        BasicTypeInfo.LONG_TYPE_INFO, BasicTypeInfo.STRING_TYPE_INFO, BasicTypeInfo.STRING_TYPE_INFO,
        BasicTypeInfo.LONG_TYPE_INFO, BasicTypeInfo.STRING_TYPE_INFO, BasicTypeInfo.STRING_TYPE_INFO,
        BasicTypeInfo.LONG_TYPE_INFO,
    };

    /** "span id: reason" of every span the job dropped because it could not evaluate or format it. */
    public static final OutputTag<String> REJECTED = new OutputTag<>("rejected", BasicTypeInfo.STRING_TYPE_INFO);

    @Override
    public Map<String, DataStream<Row>> transform(Map<String, DataStream<Row>> input) {
        if (args == null || args.isEmpty()) {
            throw new IllegalArgumentException("the node has no user_args");
        }
        Settings settings = Settings.parse(args.get(0));
        DataStream<Row> spans = input.get(settings.inputTableId);
        if (spans == null) {
            throw new IllegalArgumentException("no input " + settings.inputTableId + " (inputs: " + input.keySet() + ")");
        }
        InputLayout layout = new InputLayout(
                getFieldIndexByName(spans, "trace_id"),
                getFieldIndexByName(spans, "span_id"),
                getFieldIndexByName(spans, "span_info"),
                getFieldIndexByName(spans, "dtEventTimeStamp"));
        DataStream<Row> sampled = spans
                .keyBy(new TraceKey(layout.traceId))
                .process(new TraceSampler(settings, layout))
                .uid("bkstream-tail-sampling")
                .name("tail_sampling")
                .returns(new RowTypeInfo(OUTPUT_TYPES, OUTPUT_FIELDS));
        Map<String, DataStream<Row>> output = new HashMap<>();
        output.put(settings.outputTableId, sampled);
        return output;
    }

    // ------------------------------------------------------------------------------------------------
    // user_args

    /** {@code user_args} as the orchestrator writes it; bound by Gson, so numbers coerce as Gson does. */
    static final class UserArgs {
        @SerializedName("input_table_id")
        String inputTableId;
        @SerializedName("output_table_id")
        String outputTableId;
        @SerializedName("trace_session_gap_min")
        int traceSessionGapMin;
        @SerializedName("trace_mark_timeout_min")
        int traceMarkTimeoutMin;
        @SerializedName("sampling_conditions")
        List<Condition> samplingConditions;
        @SerializedName("random_sampling_ratio")
        int randomSamplingRatio;
        @SerializedName("max_span_count")
        long maxSpanCount;
    }

    /** One element of {@code sampling_conditions}. */
    public static final class Condition implements Serializable {
        private static final long serialVersionUID = 1L;
        String condition;
        String key;
        List<String> value;
        String method;

        @Override
        public String toString() {
            return "{condition=" + condition + ", key=" + key + ", method=" + method + ", value=" + value + "}";
        }
    }

    /** The job's settings: {@code user_args} parsed and checked, conditions grouped. */
    public static final class Settings implements Serializable {
        private static final long serialVersionUID = 1L;
        final String inputTableId;
        final String outputTableId;
        final int sessionGapMin;
        final int markTimeoutMin;
        final int randomSamplingRatio;
        final long maxSpanCount;
        /** OR of AND groups. */
        final List<List<Condition>> groups;

        private Settings(UserArgs a, List<List<Condition>> groups) {
            this.inputTableId = a.inputTableId;
            this.outputTableId = a.outputTableId;
            this.sessionGapMin = a.traceSessionGapMin;
            this.markTimeoutMin = a.traceMarkTimeoutMin;
            this.randomSamplingRatio = a.randomSamplingRatio;
            this.maxSpanCount = a.maxSpanCount;
            this.groups = groups;
        }

        /**
         * Parses {@code user_args}. Throws IllegalArgumentException where the reference job fails to
         * start: unparsable JSON or numbers, no {@code sampling_conditions}, a connector other than
         * and/or (any case) or none after the first condition, a TTL that is not positive.
         */
        public static Settings parse(String userArgs) {
            UserArgs a;
            try {
                a = new Gson().fromJson(userArgs, UserArgs.class);
            } catch (JsonParseException e) {
                throw new IllegalArgumentException("user_args do not parse: " + e.getMessage(), e);
            }
            if (a == null) {
                throw new IllegalArgumentException("user_args are empty");
            }
            if (a.samplingConditions == null) {
                throw new IllegalArgumentException("user_args have no sampling_conditions");
            }
            if (a.traceSessionGapMin <= 0) {
                throw new IllegalArgumentException("trace_session_gap_min must be positive (a state TTL), got " + a.traceSessionGapMin);
            }
            if (a.traceMarkTimeoutMin <= 0) {
                throw new IllegalArgumentException("trace_mark_timeout_min must be positive (a state TTL), got " + a.traceMarkTimeoutMin);
            }
            return new Settings(a, group(a.samplingConditions));
        }

        static List<List<Condition>> group(List<Condition> conditions) {
            List<List<Condition>> groups = new ArrayList<>();
            for (int i = 0; i < conditions.size(); i++) {
                Condition c = conditions.get(i);
                if (c == null) {
                    throw new IllegalArgumentException("sampling_conditions[" + i + "] is null");
                }
                if (i == 0) {
                    // The first condition opens the first group whatever its connector says.
                    List<Condition> first = new ArrayList<>();
                    first.add(c);
                    groups.add(first);
                } else if (c.condition == null) {
                    throw new IllegalArgumentException("sampling_conditions[" + i + "] has no condition (and/or)");
                } else if (c.condition.equalsIgnoreCase("or")) {
                    // "or" opens a new group; the condition that carries it is not part of any group.
                    groups.add(new ArrayList<Condition>());
                } else if (c.condition.equalsIgnoreCase("and")) {
                    groups.get(groups.size() - 1).add(c);
                } else {
                    throw new IllegalArgumentException("sampling_conditions[" + i + "]: unsupported condition " + c.condition);
                }
            }
            return groups;
        }
    }

    // ------------------------------------------------------------------------------------------------
    // the keyed function

    /** Positions of the input fields the job reads. */
    public static final class InputLayout implements Serializable {
        private static final long serialVersionUID = 1L;
        final int traceId;
        final int spanId;
        final int spanInfo;
        final int datetime;

        public InputLayout(int traceId, int spanId, int spanInfo, int datetime) {
            this.traceId = traceId;
            this.spanId = spanId;
            this.spanInfo = spanInfo;
            this.datetime = datetime;
        }
    }

    /** Keys spans by trace id (as text, "null" for none). */
    public static final class TraceKey implements KeySelector<Row, String> {
        private static final long serialVersionUID = 1L;
        private final int traceId;

        public TraceKey(int traceId) {
            this.traceId = traceId;
        }

        @Override
        public String getKey(Row row) {
            return String.valueOf(row.getField(traceId));
        }
    }

    /** A trace's tag: whether a span marked it, the minute it was first seen, spans counted so far. */
    public static class TraceTag {
        public boolean marked;
        public long firstMinute;
        public int spanCount;

        public TraceTag() {
        }

        static TraceTag firstSeen(long nowMs) {
            TraceTag tag = new TraceTag();
            tag.firstMinute = minuteOf(nowMs);
            return tag;
        }

        TraceTag copy() {
            TraceTag tag = new TraceTag();
            tag.marked = marked;
            tag.firstMinute = firstMinute;
            tag.spanCount = spanCount;
            return tag;
        }
    }

    static long minuteOf(long ms) {
        return Math.floorDiv(ms, 60_000L);
    }

    /** The sampling state machine per trace id. */
    public static final class TraceSampler extends KeyedProcessFunction<String, Row, Row> {
        private static final long serialVersionUID = 1L;
        private final Settings settings;
        private final InputLayout layout;
        private transient ValueState<TraceTag> tags;
        private transient MapState<String, String> buffers;
        private transient Counter rejected;
        private transient Gson gson;
        private transient Map<String, Pattern> patterns;

        public TraceSampler(Settings settings, InputLayout layout) {
            this.settings = settings;
            this.layout = layout;
        }

        @Override
        public void open(Configuration parameters) {
            ValueStateDescriptor<TraceTag> tag = new ValueStateDescriptor<>("bkstream-trace-tag", TraceTag.class);
            tag.enableTimeToLive(ttlOf(settings.markTimeoutMin));
            tags = getRuntimeContext().getState(tag);
            MapStateDescriptor<String, String> buffer = new MapStateDescriptor<>("bkstream-trace-buffer", String.class, String.class);
            buffer.enableTimeToLive(ttlOf(settings.sessionGapMin));
            buffers = getRuntimeContext().getMapState(buffer);
            rejected = getRuntimeContext().getMetricGroup().counter("tailSamplingRejected");
            gson = new Gson();
            patterns = new HashMap<>();
        }

        /** Expires at last write + TTL; expired state is never read (see the class comment). */
        private static StateTtlConfig ttlOf(int minutes) {
            return StateTtlConfig.newBuilder(Time.minutes(minutes))
                    .setUpdateType(StateTtlConfig.UpdateType.OnCreateAndWrite)
                    .setStateVisibility(StateTtlConfig.StateVisibility.NeverReturnExpired)
                    .cleanupInRocksdbCompactFilter(1000)
                    .build();
        }

        @Override
        public void processElement(Row input, Context ctx, Collector<Row> out) throws Exception {
            long now = ctx.timerService().currentProcessingTime();
            String traceId = String.valueOf(input.getField(layout.traceId));
            String spanId = String.valueOf(input.getField(layout.spanId));
            String spanInfo = String.valueOf(input.getField(layout.spanInfo));
            long datetime;
            try {
                datetime = Long.parseLong(String.valueOf(input.getField(layout.datetime)));
            } catch (NumberFormatException e) {
                reject(ctx, spanId, "dtEventTimeStamp is not a long: " + input.getField(layout.datetime));
                return;
            }

            TraceTag stored = tags.value();
            TraceTag tag = stored == null ? TraceTag.firstSeen(now) : stored.copy();
            if (minuteOf(now) - tag.firstMinute > settings.markTimeoutMin) {
                tags.clear();
                return;
            }

            try {
                if (inBucket(traceId) && tag.spanCount < settings.maxSpanCount) {
                    out.collect(row(spanInfo, datetime, spanId, traceId));
                    tag.spanCount++;
                } else if (tag.marked) {
                    if (tag.spanCount >= settings.maxSpanCount) {
                        return;
                    }
                    out.collect(row(spanInfo, datetime, spanId, traceId));
                    tag.spanCount++;
                } else if (matches(spanInfo)) {
                    Row current = row(spanInfo, datetime, spanId, traceId);
                    tag.marked = true;
                    out.collect(current);
                    tag.spanCount++;
                    if (!flush(ctx, out, tag, datetime, traceId)) {
                        // Stopped at max_span_count: the buffer is cleared and the tag is not written,
                        // so the trace stays as it was stored (unmarked), as the reference on RocksDB.
                        return;
                    }
                } else {
                    if (tag.spanCount >= settings.maxSpanCount) {
                        buffers.clear();
                        tag.spanCount = 1;
                    }
                    buffers.put(spanId, spanInfo);
                }
            } catch (RuntimeException e) {
                reject(ctx, spanId, e.toString());
                return;
            }
            tags.update(tag);
        }

        /** Emits the buffered spans after a marking span; false if it stopped at max_span_count. */
        private boolean flush(Context ctx, Collector<Row> out, TraceTag tag, long datetime, String traceId) throws Exception {
            List<Map.Entry<String, String>> buffered = new ArrayList<>();
            for (Map.Entry<String, String> e : buffers.entries()) {
                buffered.add(new java.util.AbstractMap.SimpleEntry<>(e.getKey(), e.getValue()));
            }
            buffered.sort(Map.Entry.comparingByKey(ROCKSDB_KEY_ORDER));
            for (Map.Entry<String, String> e : buffered) {
                if (tag.spanCount >= settings.maxSpanCount) {
                    buffers.clear();
                    return false;
                }
                Row row;
                try {
                    row = row(e.getValue(), datetime, e.getKey(), traceId);
                } catch (RuntimeException err) {
                    reject(ctx, e.getKey(), err.toString());
                    continue;
                }
                out.collect(row);
                tag.spanCount++;
            }
            buffers.clear();
            return true;
        }

        private void reject(Context ctx, String spanId, String reason) {
            rejected.inc();
            ctx.output(REJECTED, spanId + ": " + reason);
        }

        // --------------------------------------------------------------------------------------------
        // random sampling

        /** md5(trace id) as an unsigned number, mod 100, below the ratio. */
        boolean inBucket(String traceId) {
            byte[] digest;
            try {
                digest = MessageDigest.getInstance("MD5").digest(traceId.getBytes(StandardCharsets.UTF_8));
            } catch (NoSuchAlgorithmException e) {
                throw new IllegalStateException("MD5 is not available", e);
            }
            int rest = 0;
            for (byte b : digest) {
                rest = (rest * 256 + (b & 0xff)) % 100;
            }
            return rest < settings.randomSamplingRatio;
        }

        // --------------------------------------------------------------------------------------------
        // conditions

        /** Whether any group holds for the span. Every group is evaluated (errors in any one count). */
        boolean matches(String spanInfo) {
            if (settings.groups.isEmpty()) {
                return false;
            }
            JsonObject span = parse(spanInfo);
            boolean any = false;
            for (List<Condition> group : settings.groups) {
                boolean all = true;
                for (Condition c : group) {
                    if (!holds(span, c)) {
                        all = false;
                        break;
                    }
                }
                any |= all;
            }
            return any;
        }

        private JsonObject parse(String spanInfo) {
            JsonObject span = gson.fromJson(spanInfo, JsonObject.class);
            if (span == null) {
                throw new IllegalArgumentException("span_info is empty");
            }
            return span;
        }

        private boolean holds(JsonObject span, Condition c) {
            boolean textual = "eq".equalsIgnoreCase(c.method) || "neq".equalsIgnoreCase(c.method)
                    || "reg".equalsIgnoreCase(c.method) || "nreg".equalsIgnoreCase(c.method);
            int dot = c.key.indexOf('.');
            JsonElement value = span.get(dot < 0 ? c.key : c.key.substring(0, dot));
            if (value != null && dot >= 0) {
                value = value.getAsJsonObject().get(c.key.substring(dot + 1));
            }
            if (value == null) {
                return false;
            }
            return textual ? compareText(value.getAsString(), c) : compareNumber(value.getAsDouble(), c);
        }

        private boolean compareText(String actual, Condition c) {
            switch (c.method) {
                case "eq":
                    return c.value.contains(actual);
                case "neq":
                    return !c.value.contains(actual);
                case "reg":
                    return anyFullMatch(actual, c.value);
                case "nreg":
                    return !anyFullMatch(actual, c.value);
                default:
                    throw new IllegalArgumentException("unsupported method " + c.method);
            }
        }

        private boolean anyFullMatch(String actual, List<String> regexes) {
            for (String regex : regexes) {
                Pattern p = patterns.get(regex);
                if (p == null) {
                    p = Pattern.compile(regex);
                    patterns.put(regex, p);
                }
                if (p.matcher(actual).matches()) {
                    return true;
                }
            }
            return false;
        }

        private boolean compareNumber(double actual, Condition c) {
            List<Double> bounds = new ArrayList<>(c.value.size());
            for (String v : c.value) {
                bounds.add(Double.valueOf(v));
            }
            switch (c.method) {
                case "gt":
                    return actual > Collections.max(bounds);
                case "gte":
                    return actual >= Collections.max(bounds);
                case "lt":
                    return actual < Collections.min(bounds);
                case "lte":
                    return actual <= Collections.min(bounds);
                default:
                    throw new IllegalArgumentException("unsupported method " + c.method);
            }
        }

        // --------------------------------------------------------------------------------------------
        // output

        /** The output row of a span: JSON fields as Gson writes them, times as longs, kind as an int. */
        Row row(String spanInfo, long datetime, String spanId, String traceId) {
            JsonObject span = parse(spanInfo);
            Row row = new Row(OUTPUT_FIELDS.length);
            row.setField(0, String.valueOf(datetime));
            row.setField(1, required(span, "span_name").getAsString());
            row.setField(2, spanId);
            row.setField(3, Integer.valueOf(String.valueOf(span.get("kind"))));
            row.setField(4, String.valueOf(span.get("events")));
            row.setField(5, required(span, "parent_span_id").getAsString());
            row.setField(6, Long.valueOf(String.valueOf(span.get("end_time"))));
            row.setField(7, String.valueOf(span.get("links")));
            row.setField(8, traceId);
            row.setField(9, Long.valueOf(String.valueOf(span.get("elapsed_time"))));
            row.setField(10, String.valueOf(span.get("status")));
            row.setField(11, String.valueOf(span.get("attributes")));
            row.setField(12, Long.valueOf(String.valueOf(span.get("start_time"))));
            row.setField(13, required(span, "trace_state").toString());
            row.setField(14, String.valueOf(span.get("resource")));
            row.setField(15, datetime);
            return row;
        }

        private static JsonElement required(JsonObject span, String field) {
            JsonElement e = span.get(field);
            if (e == null) {
                throw new IllegalArgumentException("span has no " + field);
            }
            return e;
        }
    }

    // ------------------------------------------------------------------------------------------------
    // RocksDB's order of map-state keys

    /**
     * The order RocksDB iterates a trace's buffered spans in: bytewise over each span id as Flink's
     * StringSerializer writes it (length + 1, then every char, each as 7-bit groups, low first).
     */
    public static final Comparator<String> ROCKSDB_KEY_ORDER = new Comparator<String>() {
        @Override
        public int compare(String a, String b) {
            byte[] x = serialized(a);
            byte[] y = serialized(b);
            int n = Math.min(x.length, y.length);
            for (int i = 0; i < n; i++) {
                int d = (x[i] & 0xff) - (y[i] & 0xff);
                if (d != 0) {
                    return d;
                }
            }
            return x.length - y.length;
        }
    };

    static byte[] serialized(String s) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(s.length() + 2);
        writeGroups(out, s.length() + 1);
        for (int i = 0; i < s.length(); i++) {
            writeGroups(out, s.charAt(i));
        }
        return out.toByteArray();
    }

    private static void writeGroups(ByteArrayOutputStream out, int v) {
        while (v >= 0x80) {
            out.write((v & 0x7f) | 0x80);
            v >>>= 7;
        }
        out.write(v);
    }
}
