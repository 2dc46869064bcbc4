"""Reading and writing event recordings: the reference HDF5 layout and common exchange formats."""
