/* d.h - d's interface. */
