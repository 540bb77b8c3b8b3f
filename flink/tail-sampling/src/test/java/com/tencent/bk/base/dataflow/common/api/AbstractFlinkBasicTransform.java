package com.tencent.bk.base.dataflow.common.api;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.java.typeutils.RowTypeInfo;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.types.Row;

/**
 * Test-scope stand-in for the base class of BKData's dataflow SDK (not on Maven Central), with the
 * members a code node uses: the node's arguments ({@code args}, the first one being {@code user_args})
 * and the index of an input field by name. BKData's own class resolves the index through the stream's
 * table schema; here it is read from the stream's {@link RowTypeInfo}, which is the same list of names.
 */
public abstract class AbstractFlinkBasicTransform implements Serializable {

    private static final long serialVersionUID = 1L;

    /** The node's arguments; BKData passes {@code user_args} (a JSON object) first. */
    protected List<String> args = new ArrayList<>();

    /** Sets the node's arguments, as BKData does before calling {@link #transform}. */
    public void setArgs(List<String> args) {
        this.args = new ArrayList<>(args);
    }

    /** The position of {@code fieldName} in the rows of {@code dataStream}; throws if there is none. */
    public int getFieldIndexByName(DataStream<Row> dataStream, String fieldName) {
        TypeInformation<Row> type = dataStream.getType();
        if (!(type instanceof RowTypeInfo)) {
            throw new IllegalArgumentException("the input stream is not of rows with named fields: " + type);
        }
        String[] names = ((RowTypeInfo) type).getFieldNames();
        int index = Arrays.asList(names).indexOf(fieldName);
        if (index < 0) {
            throw new IllegalArgumentException("no field " + fieldName + " in the input, fields are " + Arrays.toString(names));
        }
        return index;
    }

    /** The node's logic: input streams by result table id in, output streams by result table id out. */
    public abstract Map<String, DataStream<Row>> transform(Map<String, DataStream<Row>> input);
}
