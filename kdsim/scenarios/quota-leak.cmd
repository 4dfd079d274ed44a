* Charged to a process: the solution, step by step
.lab
* The tags holding the most paged pool: the three drivers' tags hold about the same
!poolused /t8 4
* Each tag's first blocks in paged pool: which are charged to a process?
.settings set max_output_lines=12
!poolfind DpDa 1
!poolfind QqRt 1
!poolfind SvcB 1
.settings set max_output_lines=0
.check DpDa
