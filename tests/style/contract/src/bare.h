/* a comment that does not name the file */
int bare(void);
