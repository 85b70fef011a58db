-- Every task is updated at least twice (dispatched, then finished), and each
-- update of `state` rewrote its entry in the index on `state`: two index
-- entries removed and two added per task. As on PostgreSQL (its migration
-- 0004), unfinished tasks (the scheduler's start-up load, the task list
-- filtered by an unfinished state) are found instead through a partial index
-- on `finished_at_ms IS NULL`, which only the update that ends a task changes:
-- `finished_at_ms` is NULL exactly while a task has not ended. The store sets
-- `finished_at_ms` only in the statements that end tasks, since SQLite
-- maintains an index whenever an UPDATE names one of its columns. The task
-- list filtered by an ended state reads tasks newest first until its page is
-- full.
DROP INDEX tasks_state_idx;
CREATE INDEX tasks_unfinished_idx ON tasks (id) WHERE finished_at_ms IS NULL;
