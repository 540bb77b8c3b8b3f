-- Storage (0400-0499): the BRIN index on storage_span.end_time summarizes page ranges as they fill.
--
-- Without autosummarize a BRIN range is summarized only by VACUUM, and an unsummarized range matches
-- every query: on a busy day partition autovacuum's insert threshold (20 % of the rows) leaves the most
-- recent part — what "the last hour" reads — unsummarized, so time-range reads of spans (span lists, the
-- partial minutes at the ends of a rollup aggregation) scanned it all (measured: a 38 s slice of a
-- 1 M-span day partition read 52 000 pages, 206 ms, before VACUUM; 1 ms after). With autosummarize each
-- full range is summarized by autovacuum within about a minute. The option is not settable on a
-- partitioned index, so the index is rebuilt with it (partition indexes inherit it, including those of
-- partitions attached later; a BRIN build reads the table once).
DROP INDEX IF EXISTS storage_span_end_time;
CREATE INDEX storage_span_end_time ON storage_span USING brin (end_time) WITH (autosummarize = on);
