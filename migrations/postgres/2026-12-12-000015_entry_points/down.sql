DROP TABLE entry_points;
