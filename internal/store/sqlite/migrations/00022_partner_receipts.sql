-- The partner receipt: a second signed document beside each receipt, for
-- the client that submitted the request. It states each target's state
-- and outcome and names the full receipt by its SHA-256, but holds no
-- objects, row counts or retention reasons, which would tell a partner
-- what the company holds on a person. NULL for receipts issued before it
-- existed.

-- +goose Up
ALTER TABLE receipts ADD COLUMN partner_body TEXT;

-- +goose Down
ALTER TABLE receipts DROP COLUMN partner_body;
