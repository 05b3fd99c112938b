DROP TABLE ivr_flows;
