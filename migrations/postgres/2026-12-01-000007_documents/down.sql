DROP TABLE document_subjects;
DROP TABLE documents;
