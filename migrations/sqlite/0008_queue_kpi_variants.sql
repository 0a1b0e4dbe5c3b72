-- Per-queue KPI definitions (../shared/design/KPIS.md). Keep in step with ../postgres/0008_queue_kpi_variants.sql.
ALTER TABLE queues ADD COLUMN sl_variant TEXT NOT NULL DEFAULT 'answered_and_abandoned';
ALTER TABLE queues ADD COLUMN short_abandon_s INTEGER NOT NULL DEFAULT 0;
ALTER TABLE queues ADD COLUMN abandon_rate_counts_short BOOLEAN NOT NULL DEFAULT TRUE;
