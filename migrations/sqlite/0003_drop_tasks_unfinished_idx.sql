-- tasks_state_idx (state, id) already serves the start-up load of unfinished
-- tasks; the partial index only doubled the index writes of every state change.
DROP INDEX tasks_unfinished_idx;
