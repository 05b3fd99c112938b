DROP TABLE form_versions;
DROP TABLE forms;
