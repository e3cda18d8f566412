/* e.h - e's interface. */
