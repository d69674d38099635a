-- What an ended request found (lethe.Outcome: erased, no_match,
-- ambiguous_subject; '' while open) and how far its identities reached in
-- resolve (lethe.Reach as JSON: counts per root object and the kinds of
-- values not followed, never values; '' until resolve ran).

-- +goose Up
ALTER TABLE requests ADD COLUMN outcome TEXT NOT NULL DEFAULT '';
ALTER TABLE requests ADD COLUMN reach TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE requests DROP COLUMN reach;
ALTER TABLE requests DROP COLUMN outcome;
