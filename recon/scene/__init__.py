"""3D representations: NeRF field and volume renderer, DMTet (tet grid, marching tetrahedra), meshes."""
