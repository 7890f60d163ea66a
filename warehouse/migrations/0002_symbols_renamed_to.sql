-- A ticker that left a universe's holdings on the snapshot where a ticker of the same company
-- arrived (same name, or the same shares at about the same market value) was renamed: its status
-- is 'renamed' and this names the new ticker. NULL for every other ticker.
ALTER TABLE meta.symbols ADD COLUMN renamed_to VARCHAR;
