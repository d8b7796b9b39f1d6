-- The lots with points left, by card. A card keeps a row at 0 for every
-- lot it ever used up (a till holding it for years has hundreds); a quote
-- reads only the live ones through this index, and the used-up ones its
-- own unfolded entries name by key (loadCard).
CREATE INDEX lots_live ON lots(card_id) WHERE remaining <> '0';
