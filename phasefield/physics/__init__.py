"""Small pure functions of the physics: free energies, interpolation and barrier functions."""
